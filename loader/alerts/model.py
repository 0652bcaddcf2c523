"""The alert row, as stored in ``security.alerts`` and sent to sinks (docs/tables.md lists it)."""

from __future__ import annotations

ALERTS_TABLE = "alerts"
ALERT_COLUMNS = (
    ("alert_id", "string"),
    ("rule", "string"),
    ("kind", "string"),
    ("severity", "string"),
    ("event_id", "string"),
    ("event_time", "timestamp"),
    ("entity", "string"),
    ("value", "string"),
    ("account", "string"),
    ("region", "string"),
    ("source_ip", "string"),
    ("title", "string"),
    ("details", "string"),
    ("batch_id", "bigint"),
    ("created_at", "timestamp"),
)
# where an alert's fields come from in a rule's result, first match wins
SOURCES = {
    "account": ("recipientAccountId", "account"),
    "region": ("awsRegion", "region"),
    "source_ip": ("sourceIPAddress", "source_ip"),
}


def alert_id_sql(rule: str, entity: str, value: str, event_id: str = "eventID") -> str:
    """Deterministic id: the same rule, event, entity and value give the same id in every run
    (batch or streaming, first run or replay), so writes can be idempotent. Arguments are SQL
    expressions."""
    return (
        f"sha2(concat_ws('|', {rule}, coalesce({event_id}, ''), coalesce({entity}, ''), "
        f"coalesce({value}, '')), 256)"
    )


def create_alerts_table(db: str) -> str:
    columns = ", ".join(f"{name} {kind.upper()}" for name, kind in ALERT_COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{ALERTS_TABLE} ({columns}) USING parquet "
        "COMMENT 'Alerts raised by the rules (detect and run)'"
    )
