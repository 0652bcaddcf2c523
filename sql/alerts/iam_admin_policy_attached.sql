/*
name: iam_admin_policy_attached
kind: alert
description: The AdministratorAccess managed policy was attached to a user, role or group.
severity: high
entity: principal
tags: T1098.003
*/
SELECT principal,
       eventName,
       coalesce(get_json_object(requestParameters, '$.userName'),
                get_json_object(requestParameters, '$.roleName'),
                get_json_object(requestParameters, '$.groupName')) AS target,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName IN ('AttachUserPolicy', 'AttachRolePolicy', 'AttachGroupPolicy')
  AND errorCode IS NULL
  AND get_json_object(requestParameters, '$.policyArn') LIKE 'arn:aws%:iam::aws:policy/AdministratorAccess'
