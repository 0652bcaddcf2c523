"""Gap alerts: rule ``log_delivery_gap``, kind ``coverage``, entity ``account/region``.

They are rows of ``security.alerts`` like any other, so the outbox delivers them to every sink.
The id is the rule, the entity and the gap's start: a gap judged again (by a rerun of `detect`,
or by `run` while it is still open, then closed) is one alert. Other gaps of the same entity
within the dedup window (6 h) are not alerted again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from loader.alerts.model import ALERT_COLUMNS, ALERTS_TABLE
from loader.coverage.gaps import ALL_REGIONS, Gap, GapSettings, deduplicated, duration_text
from loader.sql import sql_string

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RULE = "log_delivery_gap"
KIND = "coverage"
SEVERITY = "medium"


def alert_id(gap: Gap) -> str:
    """The same as SQL ``sha2(concat_ws('|', rule, '', entity, start), 256)``: rule, no event,
    entity, and the gap's start as the value."""
    text = "|".join([RULE, "", gap.entity, gap.start.isoformat(sep=" ")])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def alert_row(gap: Gap, batch_id: int, created_at: dt.datetime) -> tuple[Any, ...]:
    where = "any region" if gap.region == ALL_REGIONS else gap.region
    state = "since" if gap.end is None else "for"
    title = (
        f"{RULE}: no CloudTrail log files from {gap.account} ({where}) {state} "
        f"{duration_text(gap.seconds)}"
    )
    details = {
        "gap_start": gap.start.isoformat(),
        "gap_end": gap.end.isoformat() if gap.end else None,
        "open": gap.end is None,
        "judged_at": gap.reference.isoformat(),
        "gap_seconds": round(gap.seconds),
        "threshold_seconds": round(gap.threshold),
        "usual_interval_p99_seconds": round(gap.p99) if gap.p99 is not None else None,
        "reason": gap.reason,
    }
    values = {
        "alert_id": alert_id(gap), "rule": RULE, "kind": KIND, "severity": SEVERITY,
        "event_id": None, "event_time": gap.start.isoformat(sep=" "), "entity": gap.entity,
        "value": gap.start.isoformat(sep=" "), "account": gap.account,
        "region": None if gap.region == ALL_REGIONS else gap.region, "source_ip": None,
        "title": title, "details": json.dumps(details, sort_keys=True), "batch_id": batch_id,
        "created_at": created_at.isoformat(sep=" "),
    }  # fmt: skip
    return tuple(values[name] for name, _ in ALERT_COLUMNS)


def alerted_before(spark: SparkSession, db: str) -> dict[str, list[dt.datetime]]:
    """entity -> gap starts already alerted in ``db.alerts`` (for dedup across runs)."""
    if not spark.catalog.tableExists(f"{db}.{ALERTS_TABLE}"):
        return {}
    spark.catalog.refreshTable(f"{db}.{ALERTS_TABLE}")
    rows = spark.sql(
        f"SELECT entity, date_format(event_time, 'yyyy-MM-dd HH:mm:ss') AS t "
        f"FROM {db}.{ALERTS_TABLE} WHERE rule = {sql_string(RULE)}"
    ).collect()
    found: dict[str, list[dt.datetime]] = {}
    for row in rows:
        if row.t:
            found.setdefault(row.entity, []).append(dt.datetime.fromisoformat(row.t))
    return found


def gap_alerts(
    spark: SparkSession,
    gaps: list[Gap],
    settings: GapSettings,
    batch_id: int,
    earlier: dict[str, list[dt.datetime]] | None = None,
) -> DataFrame:
    """The alert rows (``ALERT_COLUMNS``) for ``gaps``, deduplicated."""
    created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    rows = [alert_row(g, batch_id, created) for g in deduplicated(gaps, settings.dedup, earlier)]
    text = ", ".join(
        f"{name} string" if kind == "timestamp" else f"{name} {kind}"
        for name, kind in ALERT_COLUMNS
    )
    frame = spark.createDataFrame(rows, text)
    return frame.selectExpr(
        *(f"CAST({name} AS TIMESTAMP) AS {name}" if kind == "timestamp" else name
          for name, kind in ALERT_COLUMNS)
    )  # fmt: skip
