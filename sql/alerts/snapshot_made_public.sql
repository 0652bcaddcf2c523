/*
name: snapshot_made_public
kind: alert
description: An EBS or RDS snapshot was shared with everyone (the group "all").
severity: critical
entity: principal
tags: T1537
*/
SELECT principal,
       eventName,
       coalesce(get_json_object(requestParameters, '$.snapshotId'),
                get_json_object(requestParameters, '$.dBSnapshotIdentifier'),
                get_json_object(requestParameters, '$.dBClusterSnapshotIdentifier')) AS snapshot,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE errorCode IS NULL
  AND ((eventName = 'ModifySnapshotAttribute'
        AND exists(from_json(get_json_object(requestParameters, '$.createVolumePermission.add.items'),
                             'array<map<string,string>>'),
                   item -> lower(item['group']) = 'all'))
    OR (eventName IN ('ModifyDBSnapshotAttribute', 'ModifyDBClusterSnapshotAttribute')
        AND get_json_object(requestParameters, '$.attributeName') = 'restore'
        AND array_contains(from_json(get_json_object(requestParameters, '$.valuesToAdd'),
                                     'array<string>'), 'all')))
