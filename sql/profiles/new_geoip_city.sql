/*
name: new_geoip_city
kind: profile
description: Activity comes from a city (by GeoIP) never seen in the account before.
severity: low
value: city
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT concat_ws(', ', geoip_city(sourceIPAddress), geoip_country(sourceIPAddress)) AS city,
       userIdentity.arn AS principal,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE geoip_city(sourceIPAddress) IS NOT NULL
