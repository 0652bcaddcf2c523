-- Principals collecting AccessDenied/Unauthorized errors: misconfiguration, or someone probing.
SELECT userIdentity.arn AS principal, errorCode, count(*) AS errors,
       count(DISTINCT eventName) AS distinct_apis, collect_set(sourceIPAddress) AS source_ips
FROM cloudtrail
WHERE errorCode IN ('AccessDenied', 'Client.UnauthorizedOperation', 'UnauthorizedOperation')
GROUP BY 1, 2
ORDER BY errors DESC
LIMIT 20
