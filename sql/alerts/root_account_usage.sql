/*
name: root_account_usage
kind: alert
description: The root user made a call itself (not an AWS service acting for it).
severity: high
entity: principal
dedup: 1 hour
tags: T1078.004
*/
SELECT coalesce(nullif(userIdentity.arn, ''), concat('arn:aws:iam::', recipientAccountId, ':root')) AS principal,
       eventSource, eventName, eventType, errorCode,
       eventID, eventTime, sourceIPAddress, userAgent, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.type = 'Root'
  AND userIdentity.invokedBy IS NULL
  AND coalesce(eventType, '') <> 'AwsServiceEvent'
