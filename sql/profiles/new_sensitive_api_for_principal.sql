/*
name: new_sensitive_api_for_principal
kind: profile
description: A principal calls an IAM, KMS, Organizations or CloudTrail write API it has never called before. Every call of the principal starts its learning, so a principal's first write after its learning period alerts too.
severity: medium
entity: principal_arn
value: api
learning: 14 days
expire: 180 days
tags: T1098
*/
SELECT userIdentity.arn AS principal_arn,
       CASE WHEN eventSource IN ('iam.amazonaws.com', 'kms.amazonaws.com',
                                 'organizations.amazonaws.com', 'cloudtrail.amazonaws.com')
             AND NOT coalesce(readOnly, eventName RLIKE '^(Get|List|Describe|Lookup)')
             AND NOT eventName RLIKE '^(Decrypt|Encrypt|GenerateDataKey|GenerateMac|GenerateRandom|ReEncrypt|Sign|Verify)'
            THEN concat(split_part(eventSource, '.', 1), ':', eventName)
       END AS api,
       errorCode,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.arn IS NOT NULL
  AND userIdentity.invokedBy IS NULL
