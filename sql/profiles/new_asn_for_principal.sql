/*
name: new_asn_for_principal
kind: profile
description: A principal acts from a network (autonomous system) it has never used before, such as a hosting provider instead of the office ISP.
severity: low
entity: principal_arn
value: asn
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT userIdentity.arn AS principal_arn,
       concat('AS', geoip_asn(sourceIPAddress), ' ', coalesce(geoip_asn_org(sourceIPAddress), '')) AS asn,
       eventID, eventTime, eventName, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.arn IS NOT NULL
  AND geoip_asn(sourceIPAddress) IS NOT NULL
