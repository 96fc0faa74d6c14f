// ExfilGuard's custom role: exactly the ARM actions its rules read and (in remediate mode only)
// write, no wildcards, assignable and assigned at this subscription only. The lists below are
// infra/role-actions.json (which also names the rule needing each action and feeds the docs
// table); tests/test_infra.py checks, for every mode, that the two grant the same actions.
targetScope = 'subscription'

@description('Principal ID of the user-assigned identity ExfilGuard runs as.')
param principalId string

@description('Grant the write actions the automatic fixes need. false (audit mode): read-only role.')
param remediate bool = false

@description('Add the ML compute actions used by the optional quarantine of EXF-CMP-02 (remediate mode only).')
param enableQuarantine bool = false

// Granted in every mode: reads only. Deployed in audit mode the role can change nothing.
var readActions = [
  'Microsoft.Network/virtualNetworks/read'
  'Microsoft.Network/virtualNetworks/subnets/read'
  'Microsoft.Network/networkSecurityGroups/read'
  'Microsoft.Network/serviceEndpointPolicies/read'
  'Microsoft.MachineLearningServices/workspaces/read'
  'Microsoft.MachineLearningServices/workspaces/computes/read'
  'Microsoft.MachineLearningServices/workspaces/environments/read'
  'Microsoft.MachineLearningServices/workspaces/environments/versions/read'
  'Microsoft.Storage/storageAccounts/read'
  // Egress through a firewall (EXF-RT-01, EXF-FW-01..03, the NSG-01/02 exceptions): read only.
  'Microsoft.Network/routeTables/read'
  'Microsoft.Network/azureFirewalls/read'
  'Microsoft.Network/firewallPolicies/read'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/read'
  'Microsoft.Network/ipGroups/read'
]

// Only in remediate mode: the automatic fixes, the join checks a subnet write re-runs on every
// resource the subnet references (NSG, SEP, route table, NAT gateway), and polling their
// long-running operations.
var remediateActions = [
  'Microsoft.Network/networkSecurityGroups/write'
  'Microsoft.Network/virtualNetworks/subnets/write'
  'Microsoft.Network/networkSecurityGroups/join/action'
  'Microsoft.Network/serviceEndpointPolicies/join/action'
  'Microsoft.Network/routeTables/join/action'
  'Microsoft.Network/natGateways/join/action'
  'Microsoft.Network/serviceEndpointPolicies/write'
  'Microsoft.MachineLearningServices/workspaces/write'
  'Microsoft.Network/locations/operations/read'
  'Microsoft.Network/locations/operationResults/read'
  'Microsoft.MachineLearningServices/locations/workspaceOperationsStatus/read'
]

// Only in remediate mode with quarantine (EXF-CMP-02): stop a compute instance, scale a
// cluster to zero.
var quarantineActions = [
  'Microsoft.MachineLearningServices/workspaces/computes/stop/action'
  'Microsoft.MachineLearningServices/workspaces/computes/write'
  'Microsoft.MachineLearningServices/locations/computeOperationsStatus/read'
]

var roleActions = concat(readActions, remediate ? remediateActions : [], remediate && enableQuarantine ? quarantineActions : [])

resource roleDefinition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'exfilguard-remediator')
  properties: {
    roleName: 'ExfilGuard Remediator (${subscription().subscriptionId})'
    description: remediate ? 'Reads Azure ML workspaces, computes, environments, storage accounts and their networks; fixes exfiltration drift on NSGs, subnets, service endpoint policies and workspaces.' : 'Reads Azure ML workspaces, computes, environments, storage accounts and their networks (audit mode: no write action).'
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
    description: remediate ? 'ExfilGuard: read and remediate ML network exfiltration drift.' : 'ExfilGuard: read ML network settings and report exfiltration drift (audit mode).'
  }
}

output roleDefinitionId string = roleDefinition.id
output actions array = roleActions
