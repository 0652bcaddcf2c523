/*
name: access_denied_spike
kind: baseline
description: A principal is refused far more API calls in an hour than it usually is (enumeration, or a stolen key probing what it may do).
severity: medium
entity: principal
top: api
bucket: 1 hour
history: 30 days
min_history: 7 days
min_count: 20
deviation: 5
dedup: 6 hours
tags: T1580, T1087
*/
SELECT principal,
       concat(split_part(eventSource, '.', 1), ':', eventName) AS api,
       errorCode, eventID, eventTime, recipientAccountId
FROM cloudtrail
WHERE (errorCode IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation',
                     'Client.UnauthorizedOperation', 'UnauthorizedAccess', 'Forbidden')
       OR errorCode LIKE '%UnauthorizedOperation')
  AND principal IS NOT NULL
