/*
name: new_principal_arn
kind: profile
description: A principal ARN (user, role session, root) acts in the account for the first time.
severity: low
value: principal_arn
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT userIdentity.arn AS principal_arn,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.arn IS NOT NULL AND userIdentity.arn <> ''
