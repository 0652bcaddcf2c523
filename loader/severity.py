"""Alert severities, lowest first: rules declare one, sinks filter on one."""

from __future__ import annotations

SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str | None, default: str = "medium") -> int:
    """The position of SEVERITY (an unknown one counts as DEFAULT)."""
    return SEVERITIES.index(severity if severity in SEVERITIES else default)
