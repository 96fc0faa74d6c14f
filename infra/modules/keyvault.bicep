// Key Vault for the Teams incoming-webhook URL (a bearer secret: whoever holds it can post to
// the channel) and the optional SMTP password. RBAC authorization only; the app reads the secret through a Key Vault reference
// resolved with its user-assigned identity (Key Vault Secrets User).
@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Principal ID of the app identity, granted Key Vault Secrets User.')
param principalId string

@description('Optional principal (the deploying user) granted Key Vault Secrets Officer so it can set the webhook secret later. Empty: none.')
param adminPrincipalId string = ''

@description('Principal type of adminPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string = 'User'

@description('Name of the secret that holds the Teams webhook URL.')
param teamsWebhookSecretName string

@description('Teams incoming-webhook URL. Empty: the secret is not written by this deployment.')
@secure()
param teamsWebhookUrl string = ''

@description('Name of the secret that holds the SMTP password.')
param smtpPasswordSecretName string

@description('SMTP password. Empty: the secret is not written by this deployment.')
@secure()
param smtpPassword string = ''

var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: The Flex Consumption platform resolves Key Vault references over the public endpoint (no VNet integration here), so the firewall must allow it; access is Entra RBAC only.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access is needed to resolve the app-setting reference; no access policies, RBAC only.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

module teamsWebhookSecret 'keyvault-secret.bicep' = if (!empty(teamsWebhookUrl)) {
  name: 'exfilguard-teams-webhook-secret'
  params: {
    vaultName: vault.name
    secretName: teamsWebhookSecretName
    value: teamsWebhookUrl
    contentType: 'text/uri-list'
  }
}

module smtpPasswordSecret 'keyvault-secret.bicep' = if (!empty(smtpPassword)) {
  name: 'exfilguard-smtp-password-secret'
  params: {
    vaultName: vault.name
    secretName: smtpPasswordSecretName
    value: smtpPassword
    contentType: 'text/plain'
  }
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource adminSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(vault.id, adminPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: adminPrincipalId
    principalType: adminPrincipalType
  }
}

output id string = vault.id
output name string = vault.name
output vaultUri string = vault.properties.vaultUri
// Versionless secret URI: the app picks up a rotated secret without a redeploy.
output teamsWebhookSecretUri string = '${vault.properties.vaultUri}secrets/${teamsWebhookSecretName}'
output smtpPasswordSecretUri string = '${vault.properties.vaultUri}secrets/${smtpPasswordSecretName}'
