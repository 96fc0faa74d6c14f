// The event subscription that feeds ExfilGuard: ARM write/delete/action successes in the
// subscription, narrowed by an advanced filter to exactly the operations the handler maps
// (the reactions of the type descriptors in exfilguard/core/types.py), delivered to the Event Grid trigger, retried, and dead-lettered
// to blob storage with the topic's managed identity when delivery finally fails.
@description('Name of the subscription\'s system topic (in this resource group).')
param systemTopicName string

@description('Event subscription name.')
param name string

@description('Resource ID of the Function App.')
param functionAppId string

@description('Name of the Event Grid trigger function.')
param functionName string

@description('ARM operation names (data.operationName) to deliver. Event Grid allows at most 25 values.')
@maxLength(25)
param operationNames array

@description('Resource ID of the storage account that holds the dead-letter container.')
param deadLetterStorageAccountId string

@description('Dead-letter container name.')
param deadLetterContainerName string

@description('Delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes Event Grid keeps retrying an event before it is dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: name
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
        'Microsoft.Resources.ResourceActionSuccess'
      ]
      enableAdvancedFilteringOnArrays: false
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: operationNames
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output id string = eventSubscription.id
output name string = eventSubscription.name
