/*
name: unauthorized_api_calls_burst
kind: alert
description: One actor was refused at least 10 API calls within 10 minutes (enumeration or a stolen key with too few rights).
severity: medium
entity: principal
threshold: 10
window: 10 minutes
dedup: 1 hour
tags: T1580
*/
SELECT principal,
       eventSource, eventName, errorCode,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE (errorCode IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation',
                     'Client.UnauthorizedOperation', 'UnauthorizedAccess', 'Forbidden')
       OR errorCode LIKE '%UnauthorizedOperation')
  AND principal IS NOT NULL
