/*
name: login_profile_created_or_modified
kind: alert
description: A console password was created or changed for an IAM user other than the caller.
severity: medium
entity: principal
tags: T1098
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.userName') AS target_user,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName IN ('CreateLoginProfile', 'UpdateLoginProfile')
  AND errorCode IS NULL
  AND get_json_object(requestParameters, '$.userName') IS NOT NULL
  AND get_json_object(requestParameters, '$.userName') <> coalesce(userIdentity.userName,
        regexp_extract(coalesce(nullif(userIdentity.arn, ''), ''), '/([^/]+)$', 1))
