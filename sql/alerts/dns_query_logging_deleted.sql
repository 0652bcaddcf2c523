/*
name: dns_query_logging_deleted
kind: alert
description: Route 53 Resolver query logging was deleted or detached from a VPC.
severity: high
entity: principal
dedup: 1 hour
tags: T1562.008
*/
SELECT principal,
       eventName, get_json_object(requestParameters, '$.resolverQueryLogConfigId') AS query_log_config,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventSource = 'route53resolver.amazonaws.com'
  AND eventName IN ('DeleteResolverQueryLogConfig', 'DisassociateResolverQueryLogConfig')
  AND errorCode IS NULL
