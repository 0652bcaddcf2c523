/*
name: console_login_brute_force
kind: alert
description: At least 5 failed console sign-ins within 10 minutes for one user, or from one source address.
severity: medium
entity: target
threshold: 5
window: 10 minutes
dedup: 1 hour
tags: T1110
*/
WITH failures AS (
  SELECT coalesce(userIdentity.userName, userIdentity.arn, userIdentity.principalId) AS user_name,
         sourceIPAddress, userAgent, eventID, eventTime, recipientAccountId, awsRegion
  FROM cloudtrail
  WHERE eventName = 'ConsoleLogin'
    AND get_json_object(responseElements, '$.ConsoleLogin') = 'Failure'
)
SELECT concat('user:', user_name) AS target, user_name, sourceIPAddress, userAgent,
       eventID, eventTime, recipientAccountId, awsRegion
FROM failures WHERE user_name IS NOT NULL
UNION ALL
SELECT concat('ip:', sourceIPAddress) AS target, user_name, sourceIPAddress, userAgent,
       eventID, eventTime, recipientAccountId, awsRegion
FROM failures WHERE sourceIPAddress IS NOT NULL
