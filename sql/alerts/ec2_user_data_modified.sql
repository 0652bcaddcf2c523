/*
name: ec2_user_data_modified
kind: alert
description: An instance's user data was changed; it runs as root at the next start.
severity: high
entity: principal
tags: T1059
*/
SELECT principal,
       get_json_object(requestParameters, '$.instanceId') AS instance,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName = 'ModifyInstanceAttribute'
  AND errorCode IS NULL
  AND (get_json_object(requestParameters, '$.userData') IS NOT NULL
       OR get_json_object(requestParameters, '$.attribute') = 'userData')
