/*
name: lambda_layer_added
kind: alert
description: A Lambda function's configuration was updated to use layers (code that runs inside the function).
severity: medium
entity: principal
tags: T1525
*/
SELECT principal,
       get_json_object(requestParameters, '$.functionName') AS function,
       get_json_object(requestParameters, '$.layers') AS layers,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'lambda.amazonaws.com'
  AND eventName LIKE 'UpdateFunctionConfiguration%'
  AND errorCode IS NULL
  AND size(from_json(get_json_object(requestParameters, '$.layers'), 'array<string>')) > 0
