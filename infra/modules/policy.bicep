// ExfilGuard's baseline as Azure Policy: the rules one resource's own properties decide, created
// from the committed export in infra/policy (`exfilguard policy export --out infra/policy`), grouped
// in one initiative and assigned at subscription scope. main.bicep deploys it only when
// enablePolicyInitiative is true. The rules that need several resources stay ExfilGuard's.
targetScope = 'subscription'

@description('Effect for the rules that can safely refuse a write; the others (denySafe false) audit instead of denying.')
@allowed([
  'Audit'
  'Deny'
  'Disabled'
])
param effect string = 'Audit'

@description('Name of the initiative assignment.')
param assignmentName string = 'exfilguard-baseline'

// One entry per file of infra/policy (tests/test_policy_export.py checks the list).
var policyDefinitions = [
  loadJsonContent('../policy/exfilguard-cmp-01.json')
  loadJsonContent('../policy/exfilguard-nsg-05.json')
  loadJsonContent('../policy/exfilguard-ws-01.json')
  loadJsonContent('../policy/exfilguard-ws-02.json')
  loadJsonContent('../policy/exfilguard-ws-04.json')
]
var initiative = loadJsonContent('../policy/initiative.json')
var effectWhereDenyIsUnsafe = effect == 'Deny' ? 'Audit' : effect

resource definitions 'Microsoft.Authorization/policyDefinitions@2023-04-01' = [for d in policyDefinitions: {
  name: d.name
  properties: d.properties
}]

resource policySet 'Microsoft.Authorization/policySetDefinitions@2023-04-01' = {
  name: initiative.name
  properties: {
    displayName: initiative.properties.displayName
    description: initiative.properties.description
    policyType: 'Custom'
    metadata: initiative.properties.metadata
    parameters: initiative.properties.parameters
    policyDefinitions: [for (d, i) in policyDefinitions: {
      policyDefinitionReferenceId: d.properties.metadata.exfilguard.ruleId
      policyDefinitionId: definitions[i].id
      parameters: {
        effect: {
          value: '[parameters(\'${d.properties.metadata.exfilguard.effectParameter}\')]'
        }
      }
    }]
  }
}

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: assignmentName
  properties: {
    displayName: 'ExfilGuard baseline'
    description: 'Azure ML data-exfiltration rules that Azure Policy can decide (ExfilGuard enforces the rest).'
    policyDefinitionId: policySet.id
    enforcementMode: 'Default'
    // One value per initiative parameter: the rules whose export says denySafe false audit
    // instead of denying (tests/test_policy_export.py checks this against the export).
    parameters: {
      effectCMP01: {
        value: effectWhereDenyIsUnsafe
      }
      effectNSG05: {
        value: effect
      }
      effectWS01: {
        value: effectWhereDenyIsUnsafe
      }
      effectWS02: {
        value: effect
      }
      effectWS04: {
        value: effect
      }
    }
  }
}

output initiativeId string = policySet.id
output assignmentId string = assignment.id
