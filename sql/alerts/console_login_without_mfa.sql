/*
name: console_login_without_mfa
kind: alert
description: An IAM user or root signed in to the console with a password alone (no MFA); SAML, SSO and federated sign-ins are left out because their MFA happens at the identity provider.
severity: medium
entity: principal
dedup: 1 day
tags: T1078
*/
SELECT principal,
       userIdentity.type AS identity_type,
       eventID, eventTime, sourceIPAddress, userAgent, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventName = 'ConsoleLogin'
  AND get_json_object(responseElements, '$.ConsoleLogin') = 'Success'
  AND get_json_object(additionalEventData, '$.MFAUsed') = 'No'
  AND userIdentity.type IN ('IAMUser', 'Root')
  AND get_json_object(additionalEventData, '$.SamlProviderArn') IS NULL
