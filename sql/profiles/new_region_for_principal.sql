/*
name: new_region_for_principal
kind: profile
description: A principal makes calls in an AWS region it has never used before (attackers favour unused regions).
severity: low
entity: principal_arn
value: region
learning: 14 days
expire: 180 days
tags: T1535
*/
SELECT userIdentity.arn AS principal_arn,
       awsRegion AS region,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId
FROM cloudtrail
WHERE userIdentity.arn IS NOT NULL
  AND awsRegion IS NOT NULL
  AND userIdentity.invokedBy IS NULL
  AND coalesce(eventType, '') <> 'AwsServiceEvent'
