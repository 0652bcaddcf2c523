/*
name: s3_versioning_suspended
kind: alert
description: Versioning was suspended on a bucket, or MFA delete disabled, so objects can be overwritten or deleted for good.
severity: medium
entity: principal
dedup: 1 hour
tags: T1490
*/
SELECT principal,
       get_json_object(requestParameters, '$.bucketName') AS bucket,
       get_json_object(requestParameters, '$.VersioningConfiguration.Status') AS status,
       get_json_object(requestParameters, '$.VersioningConfiguration.MfaDelete') AS mfa_delete,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com'
  AND eventName = 'PutBucketVersioning'
  AND errorCode IS NULL
  AND (get_json_object(requestParameters, '$.VersioningConfiguration.Status') = 'Suspended'
       OR get_json_object(requestParameters, '$.VersioningConfiguration.MfaDelete') = 'Disabled')
