/*
name: mfa_device_deactivated
kind: alert
description: An MFA device was deactivated or a virtual MFA device deleted.
severity: high
entity: principal
dedup: 1 hour
tags: T1556.006
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.userName') AS target_user,
       get_json_object(requestParameters, '$.serialNumber') AS device,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName IN ('DeactivateMFADevice', 'DeleteVirtualMFADevice')
  AND errorCode IS NULL
