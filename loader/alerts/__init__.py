"""Alerts: their row model, and (later) deduplication and delivery."""
