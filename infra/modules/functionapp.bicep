// The ExfilGuard Function App on the Flex Consumption plan (Linux, Python), running as the
// user-assigned identity. Host storage, deployment package, telemetry and the Key Vault
// reference all authenticate with that identity: the app holds no keys or connection strings.
@description('Function App name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('azd service name in azure.yaml; azd finds the app by this tag.')
param azdServiceName string = 'exfilguard'

@description('Python version of the Functions runtime.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory per instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on scale-out.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Resource ID of the user-assigned identity.')
param identityId string

@description('Client ID of the user-assigned identity.')
param identityClientId string

@description('Storage account name used for AzureWebJobsStorage (identity-based).')
param storageAccountName string

@description('Blob endpoint of that account (https://<name>.blob.<suffix>/).')
param storageBlobEndpoint string

@description('Container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (not a secret: ingestion requires Entra auth).')
param appInsightsConnectionString string

@description('ExfilGuard settings, as app-setting name/value pairs (EXFILGUARD_*).')
param exfilguardSettings array

@description('Turn on App Service authentication (Microsoft Entra ID) in front of the HTTP functions, so that the audit log names the person or app calling POST /api/evaluate and /api/loopguard/release (x-ms-client-principal-name/-id). Off by default: the function key alone guards them.')
param appServiceAuth bool = false

@description('Client (application) ID of the Entra app registration callers get tokens for; required when appServiceAuth is true.')
param authClientId string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy for Flex Consumption is offered in a subset of regions only; ExfilGuard is event-driven with Event Grid retries and a nightly sweep, so a zonal outage delays remediation but loses nothing.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    // Base URL of the HTTP re-evaluation endpoint, quoted in alerts.
    name: 'EXFILGUARD_HTTP_ENDPOINT'
    value: 'https://${name}.azurewebsites.net'
  }
]

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Event Grid delivers to the Event Grid trigger without a client certificate; requiring one would drop every event.
  // checkov:skip=CKV_AZURE_222: Event Grid (destination AzureFunction) and the operator's re-evaluation call reach the app over its public endpoint; HTTPS only, TLS 1.2, no FTP or basic auth.
  // checkov:skip=CKV_AZURE_212: The app scales from zero per event; always-ready instances would bill around the clock for no gain, since Event Grid retries failed deliveries and the nightly sweep re-evaluates everything.
  // checkov:skip=CKV_AZURE_213: Health check probes long-lived instances; this app scales to zero between events and has no health route. Failures surface in Application Insights and as Event Grid dead letters.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: concat(hostSettings, exfilguardSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No FTP and no SCM basic-auth publishing: azd and the Functions tools deploy with Entra ID.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// Optional: App Service authentication. Callers of the HTTP functions then need an Entra token
// for the app registration as well as the function key, and the platform passes who they are
// in x-ms-client-principal-* headers (removing any the caller sent). Event Grid's delivery
// path is excluded: it authenticates with the Event Grid extension's system key.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (appServiceAuth) {
  // checkov:skip=CKV_AZURE_13: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  // checkov:skip=CKV_AZURE_63: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  // checkov:skip=CKV_AZURE_65: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  // checkov:skip=CKV_AZURE_66: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  // checkov:skip=CKV_AZURE_80: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  // checkov:skip=CKV_AZURE_88: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  // checkov:skip=CKV_AZURE_222: checkov reads this authsettingsV2 resource as the site's web config; it holds only the authentication settings, and the site itself is checked on functionApp above.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/runtime/webhooks/eventgrid'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
