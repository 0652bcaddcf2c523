/*
name: new_access_key
kind: profile
description: A long-term access key (AKIA...) is used for the first time in the account; temporary ASIA... keys are left out.
severity: medium
value: access_key
learning: 14 days
expire: 180 days
tags: T1078.004
*/
SELECT userIdentity.accessKeyId AS access_key,
       userIdentity.arn AS principal,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.accessKeyId LIKE 'AKIA%'
