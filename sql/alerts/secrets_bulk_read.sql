/*
name: secrets_bulk_read
kind: alert
description: One actor read at least 20 Secrets Manager secrets within 10 minutes. A BatchGetSecretValue call counts as the secrets it names, or as 20 (a full page) when it selects secrets by filter.
severity: high
entity: principal
threshold: 20
window: 10 minutes
dedup: 1 hour
tags: T1555.006
*/
SELECT principal,
       eventName, secret,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
LATERAL VIEW explode(
  CASE WHEN eventName = 'BatchGetSecretValue'
       THEN coalesce(from_json(get_json_object(requestParameters, '$.secretIdList'), 'array<string>'),
                     array_repeat('(selected by filter)', 20))
       ELSE array(get_json_object(requestParameters, '$.secretId'))
  END) reads AS secret
WHERE eventSource = 'secretsmanager.amazonaws.com'
  AND eventName IN ('GetSecretValue', 'BatchGetSecretValue')
