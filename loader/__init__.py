"""timely-security-analytics: SQL-first security analytics for AWS logs on Apache Spark."""

__version__ = "0.1.0"
