"""Where log files come from: local folders and S3 listings."""
