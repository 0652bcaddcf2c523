/*
name: rds_master_password_changed
kind: alert
description: The master user password of an RDS instance or cluster was changed (a way into the database without its credentials).
severity: medium
entity: principal
tags: T1098
*/
SELECT principal,
       eventName,
       coalesce(get_json_object(requestParameters, '$.dBInstanceIdentifier'),
                get_json_object(requestParameters, '$.dBClusterIdentifier')) AS database,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'rds.amazonaws.com'
  AND eventName IN ('ModifyDBInstance', 'ModifyDBCluster')
  AND errorCode IS NULL
  AND get_json_object(requestParameters, '$.masterUserPassword') IS NOT NULL
