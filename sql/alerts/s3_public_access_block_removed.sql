/*
name: s3_public_access_block_removed
kind: alert
description: An S3 Block Public Access configuration (bucket or account) was deleted, or set with a block turned off.
severity: high
entity: principal
dedup: 1 hour
tags: T1562
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.bucketName') AS bucket,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource IN ('s3.amazonaws.com', 's3-control.amazonaws.com')
  AND errorCode IS NULL
  AND (eventName IN ('DeleteBucketPublicAccessBlock', 'DeletePublicAccessBlock',
                     'DeleteAccountPublicAccessBlock')
       OR (eventName IN ('PutBucketPublicAccessBlock', 'PutAccountPublicAccessBlock',
                         'PutPublicAccessBlock')
           AND exists(array('BlockPublicAcls', 'IgnorePublicAcls', 'BlockPublicPolicy',
                            'RestrictPublicBuckets'),
                      setting -> lower(get_json_object(requestParameters,
                          concat('$.PublicAccessBlockConfiguration.', setting))) = 'false')))
