/*
name: iam_access_key_created
kind: alert
description: An access key was created for an IAM user other than the caller (a common way to keep access).
severity: medium
entity: principal
tags: T1098.001
*/
SELECT principal,
       get_json_object(requestParameters, '$.userName') AS target_user,
       get_json_object(responseElements, '$.accessKey.accessKeyId') AS access_key,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'CreateAccessKey'
  AND errorCode IS NULL
  AND get_json_object(requestParameters, '$.userName') IS NOT NULL
  AND get_json_object(requestParameters, '$.userName') <> coalesce(userIdentity.userName, '')
