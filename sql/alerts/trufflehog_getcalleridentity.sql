/*
name: trufflehog_getcalleridentity
kind: alert
description: GetCallerIdentity called by TruffleHog: someone is checking whether a leaked key works.
severity: high
entity: access_key
dedup: 1 day
tags: T1552
*/
SELECT coalesce(nullif(userIdentity.accessKeyId, ''), userIdentity.arn) AS access_key,
       userIdentity.arn AS principal, userAgent,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'sts.amazonaws.com'
  AND eventName = 'GetCallerIdentity'
  AND lower(userAgent) LIKE '%trufflehog%'
