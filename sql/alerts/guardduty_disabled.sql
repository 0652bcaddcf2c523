/*
name: guardduty_disabled
kind: alert
description: A GuardDuty detector was deleted or disabled, or an account left its GuardDuty administrator.
severity: critical
entity: principal
dedup: 1 hour
tags: T1562.001
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.detectorId') AS detector,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'guardduty.amazonaws.com'
  AND errorCode IS NULL
  AND (eventName IN ('DeleteDetector', 'DisassociateFromMasterAccount',
                     'DisassociateFromAdministratorAccount')
       OR (eventName = 'UpdateDetector'
           AND lower(get_json_object(requestParameters, '$.enable')) = 'false'))
