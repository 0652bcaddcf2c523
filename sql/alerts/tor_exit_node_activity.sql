/*
name: tor_exit_node_activity
kind: alert
description: A principal made calls from a Tor exit node (per the Tor list in force at the time); one alert per actor however many exit addresses it used.
severity: high
entity: principal
dedup: 6 hours
tags: T1090.003
*/
SELECT coalesce(principal, 'anonymous') AS principal,
       eventSource, eventName,
       eventID, eventTime, sourceIPAddress, userAgent, recipientAccountId, awsRegion
FROM cloudtrail
WHERE is_tor_exit_at(sourceIPAddress, eventTime)
