/*
name: new_geoip_country
kind: profile
description: Activity comes from a country (by GeoIP) never seen in the account before.
severity: medium
value: country
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT geoip_country(sourceIPAddress) AS country,
       userIdentity.arn AS principal,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE geoip_country(sourceIPAddress) IS NOT NULL
