-- Who acted, from where, with which access key (the 2015 demo's first sample query).
-- Run: spark-sql --database security -f sql/queries/principals_ips_access_keys.sql
SELECT userIdentity.arn AS principal,
       sourceIPAddress,
       userIdentity.accessKeyId AS access_key,
       count(*) AS events,
       min(eventTime) AS first_seen,
       max(eventTime) AS last_seen
FROM cloudtrail
WHERE userIdentity.arn IS NOT NULL
GROUP BY 1, 2, 3
ORDER BY events DESC
LIMIT 50
