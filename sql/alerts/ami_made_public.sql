/*
name: ami_made_public
kind: alert
description: An AMI's launch permission was granted to everyone (the group "all").
severity: high
entity: principal
tags: T1537
*/
SELECT principal,
       get_json_object(requestParameters, '$.imageId') AS image,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName = 'ModifyImageAttribute'
  AND errorCode IS NULL
  AND exists(from_json(get_json_object(requestParameters, '$.launchPermission.add.items'),
                       'array<map<string,string>>'),
             item -> lower(item['group']) = 'all')
