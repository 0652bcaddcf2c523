/*
name: new_country_for_principal
kind: profile
description: A principal acts from a country it has never acted from before.
severity: medium
entity: principal_arn
value: country
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT userIdentity.arn AS principal_arn,
       geoip_country(sourceIPAddress) AS country,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.type IN ('IAMUser', 'AssumedRole', 'Root', 'FederatedUser')
  AND userIdentity.arn IS NOT NULL
