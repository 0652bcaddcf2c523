/*
name: network_acl_permissive_entry
kind: alert
description: A network ACL entry allows ingress from every address (0.0.0.0/0 or ::/0).
severity: medium
entity: principal
dedup: 1 hour
tags: T1562.007
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.networkAclId') AS network_acl,
       get_json_object(requestParameters, '$.ruleNumber') AS rule_number,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName IN ('CreateNetworkAclEntry', 'ReplaceNetworkAclEntry')
  AND errorCode IS NULL
  AND lower(get_json_object(requestParameters, '$.egress')) = 'false'
  AND lower(get_json_object(requestParameters, '$.ruleAction')) = 'allow'
  AND (get_json_object(requestParameters, '$.cidrBlock') = '0.0.0.0/0'
       OR get_json_object(requestParameters, '$.ipv6CidrBlock') = '::/0')
