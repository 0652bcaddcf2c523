-- Everything done from Tor exit nodes (needs `python -m loader enrich` with a Tor exit list).
-- Run: spark-sql --database security -f sql/queries/tor_exit_activity.sql
SELECT eventTime,
       userIdentity.type AS identity_type,
       coalesce(userIdentity.arn, userIdentity.principalId) AS principal,
       eventName,
       sourceIPAddress,
       errorCode
FROM cloudtrail_enriched
WHERE is_tor
ORDER BY eventTime
LIMIT 100
