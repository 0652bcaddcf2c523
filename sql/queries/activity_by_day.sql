-- Volume per account, region and day: gaps here mean a trail stopped delivering.
SELECT account, region, dt, count(*) AS events,
       count(DISTINCT userIdentity.arn) AS principals,
       round(avg(CASE WHEN errorCode IS NOT NULL THEN 1 ELSE 0 END), 3) AS error_rate
FROM cloudtrail
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
