-- Services and APIs called with root credentials (the 2015 demo's second sample query).
SELECT eventSource, eventName, sourceIPAddress, count(*) AS calls, max(eventTime) AS last_call
FROM cloudtrail
WHERE userIdentity.type = 'Root'
  AND userIdentity.invokedBy IS NULL
GROUP BY 1, 2, 3
ORDER BY calls DESC
