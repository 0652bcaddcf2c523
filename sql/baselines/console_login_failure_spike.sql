/*
name: console_login_failure_spike
kind: baseline
description: Far more failed console sign-ins come from one address in an hour than usually do; an address never seen before is judged against none.
severity: medium
entity: source_ip
top: user_name
bucket: 1 hour
history: 30 days
min_history: 0 days
min_count: 10
deviation: 5
dedup: 6 hours
tags: T1110
*/
SELECT sourceIPAddress AS source_ip,
       coalesce(userIdentity.userName, userIdentity.arn, userIdentity.principalId) AS user_name,
       eventID, eventTime, recipientAccountId
FROM cloudtrail
WHERE eventName = 'ConsoleLogin'
  AND get_json_object(responseElements, '$.ConsoleLogin') = 'Failure'
  AND sourceIPAddress IS NOT NULL
