/*
name: s3_data_access_spike
kind: baseline
description: A principal reads far more S3 objects in an hour than it usually does (data events; exfiltration with a principal's own rights).
severity: medium
entity: principal
top: bucket_name
bucket: 1 hour
history: 30 days
min_history: 7 days
min_count: 100
deviation: 6
dedup: 6 hours
tags: T1530
*/
SELECT principal,
       get_json_object(requestParameters, '$.bucketName') AS bucket_name,
       eventID, eventTime, recipientAccountId
FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com' AND eventName = 'GetObject'
  AND errorCode IS NULL
  AND principal IS NOT NULL
