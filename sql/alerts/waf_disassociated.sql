/*
name: waf_disassociated
kind: alert
description: A WAF web ACL was detached from a resource, which is then unprotected.
severity: medium
entity: principal
tags: T1562
*/
SELECT principal,
       eventSource, get_json_object(requestParameters, '$.resourceArn') AS resource,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource IN ('waf.amazonaws.com', 'waf-regional.amazonaws.com', 'wafv2.amazonaws.com')
  AND eventName = 'DisassociateWebACL'
  AND errorCode IS NULL
