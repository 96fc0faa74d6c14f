// ExfilGuard's custom role: exactly the ARM actions its rules read and remediate, no wildcards,
// assignable and assigned at this subscription only. README.md (and docs/firewall.md for the
// egress reads) list every action with the rule that needs it; tests/test_infra.py checks that
// the lists agree.
targetScope = 'subscription'

@description('Principal ID of the user-assigned identity ExfilGuard runs as.')
param principalId string

@description('Add the ML compute actions used by the optional quarantine of EXF-CMP-02.')
param enableQuarantine bool = false

// Reads: discover guarded subnets, NSGs and SEPs, and evaluate every rule.
var readActions = [
  'Microsoft.Network/virtualNetworks/read'
  'Microsoft.Network/virtualNetworks/subnets/read'
  'Microsoft.Network/networkSecurityGroups/read'
  'Microsoft.Network/networkSecurityGroups/securityRules/read'
  'Microsoft.Network/serviceEndpointPolicies/read'
  'Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/read'
  'Microsoft.MachineLearningServices/workspaces/read'
  'Microsoft.MachineLearningServices/workspaces/outboundRules/read'
  'Microsoft.MachineLearningServices/workspaces/computes/read'
  'Microsoft.MachineLearningServices/workspaces/environments/read'
  'Microsoft.MachineLearningServices/workspaces/environments/versions/read'
  'Microsoft.Storage/storageAccounts/read'
  // Egress through a firewall (EXF-RT-01, EXF-FW-01..03, the NSG-01/02 exceptions): read only.
  'Microsoft.Network/routeTables/read'
  'Microsoft.Network/routeTables/routes/read'
  'Microsoft.Network/azureFirewalls/read'
  'Microsoft.Network/firewallPolicies/read'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/read'
  'Microsoft.Network/ipGroups/read'
]

// Writes: the automatic fixes. A subnet PUT re-checks join permission on every resource the
// subnet references (NSG, SEP, route table, NAT gateway), even the unchanged ones.
var remediateActions = [
  'Microsoft.Network/networkSecurityGroups/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
  'Microsoft.Network/virtualNetworks/subnets/write'
  'Microsoft.Network/networkSecurityGroups/join/action'
  'Microsoft.Network/serviceEndpointPolicies/join/action'
  'Microsoft.Network/routeTables/join/action'
  'Microsoft.Network/natGateways/join/action'
  'Microsoft.Network/serviceEndpointPolicies/write'
  'Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/write'
  'Microsoft.MachineLearningServices/workspaces/write'
]

// Long-running-operation polling for the writes above.
var operationStatusActions = [
  'Microsoft.Network/locations/operations/read'
  'Microsoft.Network/locations/operationResults/read'
  'Microsoft.MachineLearningServices/locations/workspaceOperationsStatus/read'
]

// Only with quarantine (EXF-CMP-02): stop a compute instance, scale a cluster to zero.
var quarantineActions = [
  'Microsoft.MachineLearningServices/workspaces/computes/stop/action'
  'Microsoft.MachineLearningServices/workspaces/computes/write'
  'Microsoft.MachineLearningServices/locations/computeOperationsStatus/read'
]

var roleActions = concat(readActions, remediateActions, operationStatusActions, enableQuarantine ? quarantineActions : [])

resource roleDefinition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'exfilguard-remediator')
  properties: {
    roleName: 'ExfilGuard Remediator (${subscription().subscriptionId})'
    description: 'Reads Azure ML workspaces, computes, environments, storage accounts and their networks; fixes exfiltration drift on NSGs, subnets, service endpoint policies and workspaces.'
    type: 'CustomRole'
    assignableScopes: [
      subscription().id
    ]
    permissions: [
      {
        actions: roleActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

resource roleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinition.id)
  properties: {
    roleDefinitionId: roleDefinition.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'ExfilGuard: read and remediate ML network exfiltration drift.'
  }
}

output roleDefinitionId string = roleDefinition.id
output actions array = roleActions
