// Reads the tags of the subscription's existing Event Grid system topic, so that re-declaring
// the topic (to give it a managed identity for dead-lettering) keeps them.
@description('Name of the existing system topic whose source is the subscription.')
param name string

var existingTopic = reference(resourceId('Microsoft.EventGrid/systemTopics', name), '2025-02-15', 'Full')

output tags object = existingTopic.?tags ?? {}
