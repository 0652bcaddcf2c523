/*
name: api_volume_spike_for_principal
kind: baseline
description: A principal makes far more API calls in an hour than it usually does (bulk access or automation with stolen credentials); calls AWS services make on a principal's behalf are left out.
severity: low
entity: principal
top: api
bucket: 1 hour
history: 30 days
min_history: 7 days
min_count: 200
deviation: 6
dedup: 6 hours
tags: T1078, T1530
*/
SELECT principal,
       concat(split_part(eventSource, '.', 1), ':', eventName) AS api,
       eventID, eventTime, recipientAccountId
FROM cloudtrail
WHERE userIdentity.type IN ('IAMUser', 'AssumedRole', 'Root', 'FederatedUser', 'IdentityCenterUser')
  AND userIdentity.invokedBy IS NULL
  AND principal IS NOT NULL
