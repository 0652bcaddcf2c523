/*
name: vpc_flow_logs_deleted
kind: alert
description: VPC flow logs were deleted, so network traffic is no longer recorded.
severity: high
entity: principal
dedup: 1 hour
tags: T1562.008
*/
SELECT principal,
       get_json_object(requestParameters, '$.DeleteFlowLogsRequest.FlowLogId') AS flow_logs,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName = 'DeleteFlowLogs'
  AND errorCode IS NULL
