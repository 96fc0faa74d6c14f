// ExfilGuard: deploy once per subscription.
//   azd up
//   az deployment sub create --location <region> --template-file infra/main.bicep --parameters environmentName=<name> location=<region>
// See README.md, section "Deploy".
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Short name of this deployment (azd environment name); part of every resource name.')
@minLength(1)
@maxLength(32)
param environmentName string

@description('Azure region for the resource group and its resources.')
param location string

@description('Resource group that receives ExfilGuard (created if missing).')
param resourceGroupName string = 'rg-exfilguard-${environmentName}'

@description('audit (default): report and alert, write nothing. remediate: apply the automatic fixes.')
@allowed([
  'audit'
  'remediate'
])
param mode string = 'audit'

@description('Grant the role the write actions of the automatic fixes. Defaults to mode == remediate: deployed in audit mode the role has no write action. Set true in audit mode only when per-rule overrides (EXFILGUARD_RULE_MODES) put some rules in remediate.')
param grantWriteActions bool = mode == 'remediate'

@description('Quarantine computes with a public IP (EXF-CMP-02): stop instances, scale clusters to zero. Adds the ML compute stop/write actions to the role (with grantWriteActions only).')
param enableQuarantine bool = false

@description('App Service authentication (Entra ID) in front of the HTTP functions, so that the audit log names who called them. Off by default. Needs appServiceAuthClientId.')
param appServiceAuth bool = false

@description('Client (application) ID of the Entra app registration for App Service authentication.')
param appServiceAuthClientId string = ''

@description('NCRONTAB schedule of the full sweep (six fields, UTC).')
param sweepSchedule string = '0 0 2 * * *'

@description('Python version of the Functions runtime.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Teams incoming-webhook URL, stored in Key Vault. Empty: leave the vault secret as it is.')
@secure()
param teamsWebhookUrl string = ''

@description('true when the webhook secret was written to the vault outside this deployment (az keyvault secret set); wires the app setting to it.')
param teamsWebhookInKeyVault bool = false

@description('E-mail channel: none, acs (creates Azure Communication Services with a managed domain) or smtp.')
@allowed([
  'none'
  'acs'
  'smtp'
])
param emailChannel string = 'none'

@description('Alert recipients, comma-separated (e-mail channels only).')
param emailTo string = ''

@description('Sender address for the smtp channel (acs uses DoNotReply@<managed domain>).')
param emailSender string = ''

@description('SMTP server (smtp channel).')
param smtpHost string = ''

@description('SMTP port (smtp channel).')
@minValue(1)
@maxValue(65535)
param smtpPort int = 587

@description('SMTP user name (smtp channel). Empty: no authentication.')
param smtpUsername string = ''

@description('SMTP password, stored in Key Vault (smtp channel). Empty: leave the vault secret as it is.')
@secure()
param smtpPassword string = ''

@description('true when the SMTP password secret was written to the vault outside this deployment.')
param smtpPasswordInKeyVault bool = false

@description('Use STARTTLS (smtp channel).')
param smtpStartTls bool = true

@description('Data location of the Communication Services resources (acs channel).')
param acsDataLocation string = 'United States'

@description('Name of the subscription\'s existing Event Grid system topic (a subscription has at most one). Empty: create one.')
param existingSystemTopicName string = ''

@description('Resource group of that existing system topic.')
param existingSystemTopicResourceGroup string = ''

@description('User-assigned identities already attached to the existing system topic, to keep them: { "<identity resource ID>": {} }.')
param existingSystemTopicUserAssignedIdentities object = {}

@description('Create the event subscription. It needs the on_resource_event function to exist, so the first provisioning before any code deployment sets false (azd does this, see azure.yaml).')
param subscribeToEvents bool = true

@description('Event Grid delivery attempts before dead-lettering.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Event time-to-live in minutes before dead-lettering.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

@description('Object ID of the deploying user or group, granted Key Vault Secrets Officer to manage the webhook secret. Empty: none.')
param principalId string = ''

@description('Principal type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Further EXFILGUARD_* app settings as a JSON object of strings, e.g. {"EXFILGUARD_ATTACH_SEP_ID": "<SEP resource ID>", "EXFILGUARD_RULE_MODES": "..."}. Each deployment rewrites all app settings, so set them here, not by hand. Must not repeat a setting this template writes.')
param additionalAppSettingsJson string = ''

@description('Extra tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------
// The operations the Event Grid handler maps: exactly exfilguard.operations.MAPPED_OPERATION_NAMES
// (tests/test_infra.py checks both are the same set). Event Grid allows at most 25 values in an
// event subscription's filter, so the list is split over ceil(n / 25) event subscriptions.
// ---------------------------------------------------------------------------------------------
var handledOperationNames = [
  'Microsoft.Network/networkSecurityGroups/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/delete'
  'Microsoft.Network/virtualNetworks/write'
  'Microsoft.Network/virtualNetworks/subnets/write'
  'Microsoft.Network/virtualNetworks/subnets/delete'
  'Microsoft.Network/serviceEndpointPolicies/write'
  'Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/write'
  'Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/delete'
  'Microsoft.MachineLearningServices/workspaces/write'
  'Microsoft.MachineLearningServices/workspaces/computes/write'
  'Microsoft.MachineLearningServices/workspaces/computes/delete'
  'Microsoft.MachineLearningServices/workspaces/environments/versions/write'
  'Microsoft.MachineLearningServices/workspaces/outboundRules/write'
  'Microsoft.MachineLearningServices/workspaces/outboundRules/delete'
  'Microsoft.MachineLearningServices/workspaces/privateEndpointConnections/write'
  'Microsoft.MachineLearningServices/workspaces/privateEndpointConnections/delete'
  'Microsoft.MachineLearningServices/workspaces/provisionManagedNetwork/action'
  'Microsoft.Storage/storageAccounts/privateEndpointConnections/write'
  'Microsoft.Storage/storageAccounts/privateEndpointConnections/delete'
  'Microsoft.Network/routeTables/write'
  'Microsoft.Network/routeTables/delete'
  'Microsoft.Network/routeTables/routes/write'
  'Microsoft.Network/routeTables/routes/delete'
  'Microsoft.Network/azureFirewalls/write'
  'Microsoft.Network/firewallPolicies/write'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/write'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/delete'
  'Microsoft.Network/ipGroups/write'
]
var maxFilterValues = 25
var operationChunks = (length(handledOperationNames) + maxFilterValues - 1) / maxFilterValues

var eventFunctionName = 'on_resource_event'
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'exfilguard'
})
var reuseSystemTopic = !empty(existingSystemTopicName)
var systemTopicResourceGroup = reuseSystemTopic ? existingSystemTopicResourceGroup : resourceGroupName
var systemTopicName = reuseSystemTopic ? existingSystemTopicName : 'evgt-exfilguard-${resourceToken}'
var teamsEnabled = !empty(teamsWebhookUrl) || teamsWebhookInKeyVault
var teamsWebhookSecretName = 'teams-webhook-url'
var smtpPasswordSecretName = 'smtp-password'
var smtpPasswordEnabled = emailChannel == 'smtp' && (!empty(smtpPassword) || smtpPasswordInKeyVault)
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: allTags
}

module identity 'modules/identity.bicep' = {
  name: 'exfilguard-identity'
  scope: rg
  params: {
    name: 'id-exfilguard-${resourceToken}'
    location: location
    tags: allTags
  }
}

// A subscription-scope deployment name is bound to its region: the token keeps a redeploy to
// another region from colliding with the first one.
module role 'modules/role.bicep' = {
  name: 'exfilguard-role-${resourceToken}'
  params: {
    principalId: identity.outputs.principalId
    remediate: grantWriteActions
    enableQuarantine: enableQuarantine
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'exfilguard-monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-exfilguard-${resourceToken}'
    appInsightsName: 'appi-exfilguard-${resourceToken}'
    location: location
    tags: allTags
    principalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'exfilguard-storage'
  scope: rg
  params: {
    name: 'stexfg${resourceToken}'
    location: location
    tags: allTags
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    principalId: identity.outputs.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'exfilguard-keyvault'
  scope: rg
  params: {
    name: 'kv-exfg-${resourceToken}'
    location: location
    tags: allTags
    principalId: identity.outputs.principalId
    adminPrincipalId: principalId
    adminPrincipalType: principalType
    teamsWebhookSecretName: teamsWebhookSecretName
    teamsWebhookUrl: teamsWebhookUrl
    smtpPasswordSecretName: smtpPasswordSecretName
    smtpPassword: emailChannel == 'smtp' ? smtpPassword : ''
  }
}

module email 'modules/email.bicep' = if (emailChannel == 'acs') {
  name: 'exfilguard-email'
  scope: rg
  params: {
    communicationServiceName: 'acs-exfilguard-${resourceToken}'
    emailServiceName: 'ecs-exfilguard-${resourceToken}'
    dataLocation: acsDataLocation
    tags: allTags
    principalId: identity.outputs.principalId
  }
}

var exfilguardBaseSettings = [
  {
    name: 'EXFILGUARD_MODE'
    value: mode
  }
  {
    name: 'EXFILGUARD_SUBSCRIPTION_ID'
    value: subscription().subscriptionId
  }
  {
    name: 'EXFILGUARD_IDENTITY_CLIENT_ID'
    value: identity.outputs.clientId
  }
  {
    name: 'EXFILGUARD_IDENTITY_OBJECT_ID'
    value: identity.outputs.principalId
  }
  {
    name: 'EXFILGUARD_QUARANTINE'
    value: enableQuarantine ? 'true' : 'false'
  }
  {
    // The platform, not the caller, sets x-ms-client-principal-* only with App Service authentication.
    name: 'EXFILGUARD_APP_SERVICE_AUTH'
    value: appServiceAuth ? 'true' : 'false'
  }
  {
    name: 'EXFILGUARD_SWEEP_SCHEDULE'
    value: sweepSchedule
  }
  {
    // The dead_letter_replay timer drains it (Storage Blob Data Owner on the account covers it).
    name: 'EXFILGUARD_DEADLETTER_CONTAINER'
    value: deadLetterContainerName
  }
  {
    name: 'EXFILGUARD_EMAIL_CHANNEL'
    value: emailChannel
  }
  {
    name: 'EXFILGUARD_EMAIL_TO'
    value: emailTo
  }
  {
    name: 'EXFILGUARD_EMAIL_SENDER'
    value: emailChannel == 'acs' ? email!.outputs.senderAddress : emailSender
  }
  {
    name: 'EXFILGUARD_ACS_ENDPOINT'
    value: emailChannel == 'acs' ? email!.outputs.endpoint : ''
  }
]

// Secrets arrive as Key Vault references, resolved by the platform with the app's user-assigned
// identity. A setting is written only when its secret exists: the app refuses to start on an
// unresolved reference.
var teamsSettings = teamsEnabled ? [
  {
    name: 'EXFILGUARD_TEAMS_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.teamsWebhookSecretUri})'
  }
] : []

var smtpSettings = emailChannel == 'smtp' ? [
  {
    name: 'EXFILGUARD_SMTP_HOST'
    value: smtpHost
  }
  {
    name: 'EXFILGUARD_SMTP_PORT'
    value: string(smtpPort)
  }
  {
    name: 'EXFILGUARD_SMTP_USERNAME'
    value: smtpUsername
  }
  {
    name: 'EXFILGUARD_SMTP_STARTTLS'
    value: smtpStartTls ? 'true' : 'false'
  }
] : []

var smtpPasswordSettings = smtpPasswordEnabled ? [
  {
    name: 'EXFILGUARD_SMTP_PASSWORD'
    value: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.smtpPasswordSecretUri})'
  }
] : []

var additionalAppSettings = [for setting in items(empty(additionalAppSettingsJson) ? {} : json(additionalAppSettingsJson)): {
  name: setting.key
  value: setting.value
}]

module functionApp 'modules/functionapp.bicep' = {
  name: 'exfilguard-functionapp'
  scope: rg
  params: {
    name: 'func-exfilguard-${resourceToken}'
    planName: 'plan-exfilguard-${resourceToken}'
    location: location
    tags: allTags
    pythonVersion: pythonVersion
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    exfilguardSettings: concat(exfilguardBaseSettings, teamsSettings, smtpSettings, smtpPasswordSettings, additionalAppSettings)
    appServiceAuth: appServiceAuth
    authClientId: appServiceAuthClientId
  }
}

// Event Grid: reuse the subscription's system topic or create it; either way it gets a
// system-assigned identity that may write to the dead-letter container and nowhere else.
module systemTopicLookup 'modules/eventgrid-topic-lookup.bicep' = if (reuseSystemTopic) {
  name: 'exfilguard-systemtopic-lookup'
  scope: resourceGroup(systemTopicResourceGroup)
  params: {
    name: systemTopicName
  }
}

module systemTopic 'modules/eventgrid-topic.bicep' = {
  name: 'exfilguard-systemtopic'
  scope: resourceGroup(systemTopicResourceGroup)
  dependsOn: [
    rg
  ]
  params: {
    name: systemTopicName
    tags: reuseSystemTopic ? systemTopicLookup!.outputs.tags : allTags
    userAssignedIdentities: existingSystemTopicUserAssignedIdentities
  }
}

module deadLetterAccess 'modules/deadletter-access.bicep' = {
  name: 'exfilguard-deadletter-access'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    containerName: storage.outputs.deadLetterContainerName
    principalId: systemTopic.outputs.principalId
  }
}

// One event subscription per 25 operations (the first keeps its original name).
module eventSubscription 'modules/eventgrid-subscription.bicep' = [for i in range(0, operationChunks): if (subscribeToEvents) {
  name: i == 0 ? 'exfilguard-eventsubscription' : 'exfilguard-eventsubscription-${i + 1}'
  scope: resourceGroup(systemTopicResourceGroup)
  dependsOn: [
    deadLetterAccess
  ]
  params: {
    systemTopicName: systemTopic.outputs.name
    name: i == 0 ? 'exfilguard' : 'exfilguard-${i + 1}'
    functionAppId: functionApp.outputs.id
    functionName: eventFunctionName
    operationNames: take(skip(handledOperationNames, i * maxFilterValues), maxFilterValues)
    deadLetterStorageAccountId: storage.outputs.id
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    maxDeliveryAttempts: maxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
  }
}]

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment: azd env get-values)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_ENDPOINT string = 'https://${functionApp.outputs.defaultHostName}'
output IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output IDENTITY_CLIENT_ID string = identity.outputs.clientId
output ROLE_DEFINITION_ID string = role.outputs.roleDefinitionId
output KEY_VAULT_NAME string = keyVault.outputs.name
output TEAMS_WEBHOOK_SECRET_NAME string = teamsWebhookSecretName
output SMTP_PASSWORD_SECRET_NAME string = smtpPasswordSecretName
output SYSTEM_TOPIC_NAME string = systemTopic.outputs.name
output SYSTEM_TOPIC_RESOURCE_GROUP string = systemTopicResourceGroup
output DEAD_LETTER_CONTAINER string = '${storage.outputs.name}/${deadLetterContainerName}'

// --- Azure Policy (optional): the rules one resource decides, denied or audited at the write ---

@description('Create and assign the ExfilGuard Azure Policy initiative (infra/policy) at subscription scope. Off by default.')
param enablePolicyInitiative bool = false

@description('Effect of the initiative: Audit, Deny (rules that can safely refuse a write) or Disabled.')
@allowed([
  'Audit'
  'Deny'
  'Disabled'
])
param policyEffect string = 'Audit'

module policy 'modules/policy.bicep' = if (enablePolicyInitiative) {
  name: 'exfilguard-policy-${resourceToken}'
  params: {
    effect: policyEffect
  }
}
