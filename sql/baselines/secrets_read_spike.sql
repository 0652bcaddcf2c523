/*
name: secrets_read_spike
kind: baseline
description: A principal reads far more Secrets Manager secrets in an hour than it usually does.
severity: high
entity: principal
top: eventName
bucket: 1 hour
history: 30 days
min_history: 7 days
min_count: 20
deviation: 5
dedup: 6 hours
tags: T1555.006
*/
SELECT principal,
       eventName, eventID, eventTime, recipientAccountId
FROM cloudtrail
WHERE eventSource = 'secretsmanager.amazonaws.com'
  AND eventName IN ('GetSecretValue', 'BatchGetSecretValue')
  AND errorCode IS NULL
  AND principal IS NOT NULL
