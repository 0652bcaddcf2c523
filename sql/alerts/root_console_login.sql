/*
name: root_console_login
kind: alert
description: The root user signed in to the AWS console successfully.
severity: high
entity: principal
dedup: 1 hour
tags: T1078.004
*/
SELECT coalesce(nullif(userIdentity.arn, ''), concat('arn:aws:iam::', recipientAccountId, ':root')) AS principal,
       eventID, eventTime, sourceIPAddress, userAgent, recipientAccountId, awsRegion,
       get_json_object(additionalEventData, '$.MFAUsed') AS mfa_used
FROM cloudtrail
WHERE eventName = 'ConsoleLogin'
  AND userIdentity.type = 'Root'
  AND get_json_object(responseElements, '$.ConsoleLogin') = 'Success'
