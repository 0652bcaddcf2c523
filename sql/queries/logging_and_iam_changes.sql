-- Changes an intruder makes first: audit logging turned off, users and long-term keys created.
SELECT eventTime, eventName, userIdentity.arn AS principal, sourceIPAddress,
       coalesce(get_json_object(requestParameters, '$.userName'),
                get_json_object(requestParameters, '$.name')) AS target,
       get_json_object(responseElements, '$.accessKey.accessKeyId') AS new_access_key
FROM cloudtrail
WHERE eventName IN ('StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors',
                    'CreateUser', 'CreateAccessKey', 'CreateLoginProfile', 'AttachUserPolicy')
  AND errorCode IS NULL
ORDER BY eventTime
