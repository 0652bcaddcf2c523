/*
name: rds_instance_made_public
kind: alert
description: An RDS instance or cluster was created or modified to be publicly accessible.
severity: high
entity: principal
tags: T1190
*/
SELECT principal,
       eventName,
       coalesce(get_json_object(requestParameters, '$.dBInstanceIdentifier'),
                get_json_object(requestParameters, '$.dBClusterIdentifier')) AS database,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'rds.amazonaws.com'
  AND eventName IN ('CreateDBInstance', 'ModifyDBInstance', 'CreateDBCluster', 'ModifyDBCluster',
                    'RestoreDBInstanceFromDBSnapshot')
  AND errorCode IS NULL
  AND lower(get_json_object(requestParameters, '$.publiclyAccessible')) = 'true'
