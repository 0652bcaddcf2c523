/*
name: saml_provider_changed
kind: alert
description: An IAM SAML identity provider was created, updated or deleted (who may federate into the account); IAM Identity Center managing its own providers is left out.
severity: high
entity: principal
tags: T1484.002
*/
SELECT principal,
       eventName,
       coalesce(get_json_object(requestParameters, '$.sAMLProviderArn'),
                get_json_object(requestParameters, '$.name')) AS provider,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName IN ('CreateSAMLProvider', 'UpdateSAMLProvider', 'DeleteSAMLProvider')
  AND errorCode IS NULL
  AND coalesce(userIdentity.sessionContext.sessionIssuer.userName, '') <> 'AWSServiceRoleForSSO'
  AND coalesce(userIdentity.invokedBy, '') <> 'sso.amazonaws.com'
