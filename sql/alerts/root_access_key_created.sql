/*
name: root_access_key_created
kind: alert
description: The root user created an access key (long-term credentials for root).
severity: critical
entity: principal
tags: T1098.001
*/
SELECT coalesce(nullif(userIdentity.arn, ''), concat('arn:aws:iam::', recipientAccountId, ':root')) AS principal,
       get_json_object(responseElements, '$.accessKey.accessKeyId') AS access_key,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com' AND eventName = 'CreateAccessKey'
  AND userIdentity.type = 'Root' AND errorCode IS NULL
