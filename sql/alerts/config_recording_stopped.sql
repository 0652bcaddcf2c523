/*
name: config_recording_stopped
kind: alert
description: AWS Config stopped recording: a configuration recorder stopped or deleted, or its delivery channel deleted.
severity: high
entity: principal
dedup: 1 hour
tags: T1562.001
*/
SELECT principal,
       eventName,
       coalesce(get_json_object(requestParameters, '$.configurationRecorderName'),
                get_json_object(requestParameters, '$.deliveryChannelName')) AS target,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'config.amazonaws.com'
  AND eventName IN ('StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel')
  AND errorCode IS NULL
