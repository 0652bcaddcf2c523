"""Writing alerts to ``security.alerts``: idempotent, by the deterministic ``alert_id``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loader.alerts.model import ALERTS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def append_new_alerts(
    spark: SparkSession, alerts: DataFrame, db: str, timing: list[Any] | None = None
) -> int:
    """Append the alerts whose ``alert_id`` the table does not hold yet, so a rerun of
    `detect` or a batch the runner replays after a crash adds nothing; how many were new.
    ``timing`` gets the new alerts' event_id, batch_id, event_time and created_at."""
    table = f"{db}.{ALERTS_TABLE}"
    spark.catalog.refreshTable(table)
    new = alerts.join(spark.table(table).select("alert_id"), "alert_id", "left_anti")
    new = new.select(alerts.columns).localCheckpoint()
    added = new.count()
    if added:
        new.write.insertInto(table)
        if timing is not None:
            timing.extend(new.select("event_id", "batch_id", "event_time", "created_at").collect())
    return added
