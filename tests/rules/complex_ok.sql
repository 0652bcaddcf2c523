/*
name: complex_ok
kind: alert
description: exercises the validator
severity: low
entity: actor
dedup_key: actor, eventName
*/
WITH denied AS (
  SELECT userIdentity.arn AS actor, eventName, eventTime, eventID, sourceIPAddress,
         row_number() OVER (PARTITION BY userIdentity.arn ORDER BY eventTime) AS n
  FROM cloudtrail
  WHERE errorCode IN ('AccessDenied', 'UnauthorizedOperation')
)
SELECT d.actor, d.eventName, d.eventTime, d.eventID,
       get_json_object(c.requestParameters, '$.userName') AS target,
       resources[0].ARN AS first_arn, r.col AS exploded,
       exists(c.resources, x -> x.type = 'AWS::IAM::User') AS touches_user,
       CASE WHEN c.userIdentity.sessionContext.attributes.mfaAuthenticated = 'true' THEN 1 ELSE 0 END AS mfa,
       is_tor_exit_at(c.sourceIPAddress, c.eventTime) AS tor
FROM denied d
JOIN cloudtrail c ON c.eventID = d.eventID
LATERAL VIEW OUTER explode(c.resources) r AS col
WHERE d.n > 1 AND c.dt >= '2024-01-01'
  AND lower(c.userAgent) LIKE '%trufflehog%'
  AND (SELECT count(*) FROM cloudtrail x WHERE x.eventName = d.eventName) > 0
