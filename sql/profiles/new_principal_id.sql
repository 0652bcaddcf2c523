/*
name: new_principal_id
kind: profile
description: A principal id (AIDA.../AROA...:session, account id for root) acts in the account for the first time.
severity: low
value: principal_id
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT userIdentity.principalId AS principal_id,
       userIdentity.arn AS principal,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.principalId IS NOT NULL AND userIdentity.principalId <> ''
