-- Where each principal acts from: country, city and network (needs `python -m loader enrich`).
-- Run: spark-sql --database security -f sql/queries/principals_by_country.sql
SELECT userIdentity.arn AS principal,
       country,
       city,
       asn_org AS network,
       count(*) AS events,
       count(DISTINCT sourceIPAddress) AS addresses,
       min(eventTime) AS first_seen,
       max(eventTime) AS last_seen
FROM cloudtrail_enriched
WHERE userIdentity.arn IS NOT NULL AND country IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY principal, events DESC
LIMIT 100
