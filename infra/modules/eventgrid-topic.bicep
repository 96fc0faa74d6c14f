// The subscription's Event Grid system topic (source: the subscription). A subscription can
// have only one: main.bicep either creates it or re-declares the existing one (same name,
// source and type), which adds a system-assigned identity used for dead-lettering.
@description('System topic name.')
param name string

@description('Tags of the topic (the existing ones when reusing it).')
param tags object = {}

@description('User-assigned identities already attached to a reused topic, to keep them: { "<identity resource ID>": {} }. Empty: none.')
param userAssignedIdentities object = {}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: 'global'
  tags: tags
  identity: empty(userAssignedIdentities) ? {
    type: 'SystemAssigned'
  } : {
    type: 'SystemAssigned, UserAssigned'
    userAssignedIdentities: userAssignedIdentities
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output id string = topic.id
output name string = topic.name
output principalId string = topic.identity.principalId
