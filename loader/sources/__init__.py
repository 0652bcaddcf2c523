"""Where logs and events come from: local folders, S3 listings and sync, trail discovery, SQS
notifications of new log files, and CloudTrail events from EventBridge on SQS."""
