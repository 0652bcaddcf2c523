/*
name: ebs_default_encryption_disabled
kind: alert
description: EBS encryption by default was turned off for a region; new volumes will be unencrypted.
severity: high
entity: principal
dedup: 1 hour
tags: T1486
*/
SELECT principal,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName = 'DisableEbsEncryptionByDefault'
  AND errorCode IS NULL
