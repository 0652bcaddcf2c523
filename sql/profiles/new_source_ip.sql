/*
name: new_source_ip
kind: profile
description: A source IP address is seen in the account for the first time (service names and "AWS Internal" are not addresses).
severity: info
value: source_ip
learning: 14 days
expire: 180 days
tags: T1078
*/
SELECT sourceIPAddress AS source_ip,
       userIdentity.arn AS principal,
       eventID, eventTime, eventName, recipientAccountId, awsRegion
FROM cloudtrail
WHERE sourceIPAddress RLIKE '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$|^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*$'
