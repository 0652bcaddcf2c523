/*
name: organization_leave_attempt
kind: alert
description: An account tried to leave its AWS Organization (and so its guardrails), successful or not.
severity: critical
entity: principal
tags: T1562
*/
SELECT principal,
       errorCode, eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'organizations.amazonaws.com' AND eventName = 'LeaveOrganization'
