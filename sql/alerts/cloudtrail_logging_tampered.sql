/*
name: cloudtrail_logging_tampered
kind: alert
description: CloudTrail logging was stopped, a trail deleted, or event selectors set to drop management events.
severity: critical
entity: principal
dedup: 1 hour
tags: T1562.008
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.name') AS trail,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'cloudtrail.amazonaws.com'
  AND errorCode IS NULL
  AND (eventName IN ('StopLogging', 'DeleteTrail')
       OR (eventName = 'PutEventSelectors'
           AND exists(from_json(get_json_object(requestParameters, '$.eventSelectors'),
                                'array<struct<includeManagementEvents:string>>'),
                      s -> lower(s.includeManagementEvents) = 'false')))
