/*
name: security_group_opened_to_world
kind: alert
description: A security group ingress rule was added for every address (a CIDR of length 0, such as 0.0.0.0/0 or ::/0).
severity: high
entity: principal
dedup: 1 hour
tags: T1562.007
*/
SELECT principal,
       get_json_object(requestParameters, '$.groupId') AS security_group,
       regexp_extract(requestParameters, '"cidrIp(v6)?"\\s*:\\s*"([^"]*/0)"', 2) AS cidr,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName = 'AuthorizeSecurityGroupIngress'
  AND errorCode IS NULL
  AND requestParameters RLIKE '"cidrIp(v6)?"\\s*:\\s*"[^"]*/0"'
