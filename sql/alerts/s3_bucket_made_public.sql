/*
name: s3_bucket_made_public
kind: alert
description: A bucket ACL granted access to AllUsers or AuthenticatedUsers (or a public canned ACL), or a bucket policy allowed Principal * without a condition.
severity: critical
entity: principal
dedup: 1 hour
tags: T1530
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.bucketName') AS bucket,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 's3.amazonaws.com'
  AND errorCode IS NULL
  AND ((eventName = 'PutBucketAcl'
        AND (requestParameters RLIKE 'acs\\.amazonaws\\.com/groups/global/(AllUsers|AuthenticatedUsers)'
             OR requestParameters RLIKE '"x-amz-acl"\\s*:\\s*\\[?\\s*"(public-read|public-read-write|authenticated-read)"'))
    OR (eventName = 'PutBucketPolicy'
        AND exists(
          from_json(
            CASE WHEN get_json_object(requestParameters, '$.bucketPolicy.Statement') LIKE '[%'
                 THEN get_json_object(requestParameters, '$.bucketPolicy.Statement')
                 ELSE concat('[', get_json_object(requestParameters, '$.bucketPolicy.Statement'), ']')
            END,
            'array<struct<Effect:string,Principal:string,Condition:string>>'),
          s -> s.Effect = 'Allow' AND s.Condition IS NULL
               AND (s.Principal = '*' OR s.Principal RLIKE '"AWS"\\s*:\\s*(\\[\\s*)?"\\*"'))))
