// Writes one alert-channel secret (Teams webhook URL, SMTP password) to the vault. keyvault.bicep
// calls it only when a value is given, so a redeploy without one leaves a secret set out of band
// untouched.
@description('Existing Key Vault name.')
param vaultName string

@description('Secret name.')
param secretName string

@description('Secret value.')
@secure()
param value string

@description('Content type recorded with the secret.')
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: Neither a Teams incoming-webhook URL nor an SMTP password expires on a schedule Key Vault knows; an expiry date would silently stop alerting. Rotate by redeploying with the new value.
  parent: vault
  name: secretName
  properties: {
    value: value
    contentType: contentType
  }
}
