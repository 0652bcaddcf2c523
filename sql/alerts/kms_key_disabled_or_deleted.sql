/*
name: kms_key_disabled_or_deleted
kind: alert
description: A KMS key was disabled or scheduled for deletion; data encrypted under it becomes unreadable.
severity: high
entity: principal
dedup: 1 hour
tags: T1485
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.keyId') AS key_id,
       get_json_object(requestParameters, '$.pendingWindowInDays') AS pending_days,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'kms.amazonaws.com'
  AND eventName IN ('DisableKey', 'ScheduleKeyDeletion')
  AND errorCode IS NULL
