-- Successful console sign-ins without MFA (SAML/SSO sign-ins carry no MFAUsed and are left out).
SELECT eventTime, userIdentity.type AS identity_type,
       coalesce(userIdentity.userName, userIdentity.arn) AS who,
       sourceIPAddress, account
FROM cloudtrail
WHERE eventName = 'ConsoleLogin'
  AND get_json_object(responseElements, '$.ConsoleLogin') = 'Success'
  AND get_json_object(additionalEventData, '$.MFAUsed') = 'No'
ORDER BY eventTime
