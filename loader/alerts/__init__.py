"""Alerts: the alert row and its tables, delivery to sinks (dedup, allowlists, the outbox)."""
