/*
name: s3_bucket_logging_disabled
kind: alert
description: Server access logging was turned off for a bucket (PutBucketLogging with an empty logging status).
severity: medium
entity: principal
dedup: 1 hour
tags: T1562.008
*/
SELECT principal,
       get_json_object(requestParameters, '$.bucketName') AS bucket,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com'
  AND eventName = 'PutBucketLogging'
  AND errorCode IS NULL
  AND get_json_object(requestParameters, '$.BucketLoggingStatus') IS NOT NULL
  AND get_json_object(requestParameters, '$.BucketLoggingStatus.LoggingEnabled') IS NULL
