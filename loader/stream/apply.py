"""The apply query: the observations, grouped by (rule, key), through the stateful step
(:func:`loader.engine.step.stream_step`, state in Spark's RocksDB state store) in event-time
order; alerts to ``security.alerts`` (idempotent by the deterministic ``alert_id``), the profile
entries a batch changed to ``security.profile_state_log`` (idempotent per batch), one status
line per observe batch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loader.alerts.store import append_new_alerts
from loader.alerts.tables import BASELINE_LOG, STATE_LOG
from loader.engine.reduce_sql import alert_rows_sql
from loader.engine.scratch import Scratch
from loader.engine.sql import OBSERVATION_SCHEMA
from loader.engine.step import STATE_SCHEMA, STEP_SCHEMA, stream_step
from loader.rules.model import Rule
from loader.stream.checkpoint import APPLY, OBSERVATIONS, Folder, clean
from loader.stream.observe import PHASES_ENV, STATUS_RULE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

CLOSED = -1  # a status line's batch for alerts of buckets closed with no batch of their own
STATE_PARTITIONS_CONF = "spark.tsa.run.statePartitions"
STATE_PARTITIONS_PER_CORE = 4  # the default


@dataclass
class BatchStatus:
    """One line per batch of events: what came in, what it raised, how far behind."""

    batch: int
    events: int = 0
    files: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    added: int = 0
    started: dt.datetime | None = None
    newest_event: dt.datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)
    queue: int | None = None  # with an events queue: its events, second arrivals, stale ones
    duplicates: int = 0
    stale: int = 0
    queue_ids: set[str] = field(default_factory=set)
    latency: dict[str, list[float]] = field(default_factory=dict)  # source -> seconds

    def read_summary(self, summary: dict[str, Any]) -> None:
        """What the observe batch said of itself (its status record's details)."""
        self.events, self.files = summary["events"], summary["files"]
        self.started = dt.datetime.fromisoformat(summary["started"])
        self.errors.update(summary["errors"])
        if summary["newest"]:
            self.newest_event = dt.datetime.fromisoformat(summary["newest"])
        if "queue" in summary:
            self.queue, self.stale = summary["queue"], summary["stale"]
            self.duplicates = summary["duplicates"]
            self.queue_ids = set(summary["queue_ids"])

    def sources(self) -> str:
        """With an events queue: where the batch's events came from."""
        if self.queue is None:
            return ""
        text = f" (queue {self.queue:,}, files' {self.events - self.queue:,}"
        text += f"; counted already {self.duplicates:,}"
        text += f", queue events older than the window {self.stale:,})" if self.stale else ")"
        return text

    def latencies(self) -> str:
        """How long from eventTime to the alert rows, by where the events came from."""
        text = ""
        for source in ("queue", "file"):
            seconds = sorted(self.latency.get(source, []))
            if seconds:
                text += (f", {source} latency median {statistics.median(seconds):.1f} s "
                         f"max {seconds[-1]:.1f} s")  # fmt: skip
        return text

    def render(self) -> str:
        """The time is from the batch's start to its alerts written; the lag, how far the
        newest event read is behind now."""
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(self.alerts.items())) or "none"
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        seconds = (now - self.started).total_seconds() if self.started else 0.0
        lag = ""
        if self.newest_event is not None:
            lag = f", lag {(now - self.newest_event).total_seconds():,.0f} s"
        if self.batch == CLOSED:
            return f"buckets closed: alerts {sum(self.alerts.values())} ({rules}), new {self.added}"
        line = (
            f"batch {self.batch}: events {self.events:,}{self.sources()}, files {self.files:,}, "
            f"alerts {sum(self.alerts.values())} ({rules}), new {self.added}, "
            f"{seconds:.1f} s{lag}{self.latencies()}"
        )
        for rule, error in sorted(self.errors.items()):
            line += f"\n  rule {rule} FAILED, left out of this batch: {error}"
        return line


def _append_new(
    session: SparkSession, entries: DataFrame, table: str, keys: tuple[str, ...], batch_id: int
) -> None:
    """Append to ``table`` the rows of ``entries`` (with their ``batch_id``) the table does not
    hold yet for this batch: a replayed batch (even one killed while its files were being
    committed) completes what is missing."""
    session.catalog.refreshTable(table)
    logged = session.table(table).where(f"batch_id = {int(batch_id)}")
    same = [entries[c].eqNullSafe(logged[c]) for c in keys]
    new = entries.join(logged.select(*keys), same, "left_anti")
    new.selectExpr("*", "current_timestamp() AS updated_at").write.insertInto(table)


def _write_state(session: SparkSession, rows: DataFrame, db: str, batch_id: int) -> None:
    """The batch's profile entries into ``profile_state_log``."""
    entries = rows.selectExpr(
        "rule", "entity", "value", "first_seen", "last_seen", "seen_count",
        f"CAST({int(batch_id)} AS BIGINT) AS batch_id",
    )  # fmt: skip
    _append_new(session, entries, f"{db}.{STATE_LOG}", ("rule", "entity", "value"), batch_id)


def _write_baselines(session: SparkSession, rows: DataFrame, db: str, batch_id: int) -> None:
    """The batch's judged buckets into ``profile_baseline_log``."""
    schema = "median double, p95 double, max bigint, buckets bigint, score double, alert boolean"
    entries = rows.selectExpr(
        "rule", "entity", "event_time AS bucket_start", "seen_count AS count",
        f"from_json(details, '{schema}') AS d",
    ).selectExpr(
        "rule", "entity", "bucket_start", "count", "d.median", "d.p95", "d.max AS maximum",
        "d.buckets", "d.score", "d.alert AS alerted",
        f"CAST({int(batch_id)} AS BIGINT) AS batch_id",
    )  # fmt: skip
    keys = ("rule", "entity", "bucket_start")
    _append_new(session, entries, f"{db}.{BASELINE_LOG}", keys, batch_id)


def _latency(statuses: dict[int, BatchStatus], alerts: list[Any]) -> None:
    """Each new alert's time from its event to its row, by where its event came from."""
    for alert in alerts:
        status = statuses.get(alert.batch_id)
        if status is None or status.queue is None or alert.event_id is None:
            continue  # a bucket's alert (baselines), or no events queue
        source = "queue" if alert.event_id in status.queue_ids else "file"
        seconds = (alert.created_at - alert.event_time).total_seconds()
        status.latency.setdefault(source, []).append(seconds)


def _tally(batch: DataFrame) -> tuple[dict[int, BatchStatus], int, int]:
    """One small job over a stepped batch: the state and baseline rows counted, the few
    others (alerts, status, errors) read into one status per observe batch."""
    columns = (
        "record", "rule", "batch",
        "CASE WHEN record IN ('status', 'error') THEN details END AS details",
    )  # fmt: skip
    found = batch.selectExpr(*columns).groupBy("record", "rule", "batch", "details").count()
    rows = found.collect()
    statuses: dict[int, BatchStatus] = {}
    counts = Counter[str]()
    reported = {row.batch for row in rows if row.record == "status"}
    for row in rows:
        if row.record in ("state", "baseline"):
            counts[row.record] += row["count"]
            continue
        number = row.batch if row.batch in reported else CLOSED
        status = statuses.setdefault(number, BatchStatus(number))
        if row.record == "alert":
            status.alerts[row.rule] += row["count"]
        elif row.record == "error":
            status.errors[row.rule] = row.details
        else:
            status.read_summary(json.loads(row.details))
    return statuses, counts["state"], counts["baseline"]


def _write_alerts(
    session: SparkSession, batch: DataFrame, rules: list[Rule], database: str,
    statuses: dict[int, BatchStatus],
) -> int:  # fmt: skip
    """The batch's alert records as alert rows into the alerts table; how many were new (their
    latency goes to the statuses)."""
    scratch = Scratch(session)
    try:
        view = scratch.view(batch.where("record = 'alert'"), "run_alerts")
        alerts = session.sql(alert_rows_sql(rules, view))
        timing: list[Any] = []
        added = append_new_alerts(session, alerts, database, timing)
    finally:
        scratch.drop()
    _latency(statuses, timing)
    return added


def _stepped(spark: SparkSession, observations: str, rules: list[Rule], strict: bool) -> Any:
    """The observations under ``observations`` as a stream, through the stateful step."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    # The watermark is on the clock (the newest event time observe had seen when it wrote a
    # row), never on eventTime: no row is ever late for it (each batch's clock is at least the
    # last one, the delay keeps equal clocks in), and it tells the baselines' keys, called back
    # by their event-time timeouts, how far time has gone.
    rows = (
        spark.readStream.schema(OBSERVATION_SCHEMA)
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "*.parquet")
        .parquet(observations)
        .withWatermark("clock", "1 millisecond")
    )
    return rows.groupBy("rule", "key").applyInPandasWithState(
        stream_step(rules, strict, STATUS_RULE),
        STEP_SCHEMA,
        STATE_SCHEMA,
        "append",
        GroupStateTimeout.EventTimeTimeout,
    )


def start_apply(
    spark: SparkSession,
    rules: list[Rule],
    database: str,
    checkpoint: str,
    once: bool,
    report: Callable[[str], None] = print,
    strict: bool = False,
    on_alerts: Callable[[], None] | None = None,
) -> StreamingQuery:
    """The apply query over what the observe query wrote under ``checkpoint``; ``on_alerts``
    is called after a batch added alerts."""
    root = Folder(spark, checkpoint)
    observations = Folder(spark, root.child(OBSERVATIONS))
    step_rows = _stepped(spark, observations.path, rules, strict)
    # The state's partitions are fixed when the checkpoint is created: Spark's default of 200
    # would make every batch, however small, open and commit 200 state stores.
    partitions = spark.conf.get(STATE_PARTITIONS_CONF, None) or str(
        STATE_PARTITIONS_PER_CORE * spark.sparkContext.defaultParallelism
    )
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", partitions)

    def apply(batch: DataFrame, batch_id: int) -> None:
        session = batch.sparkSession
        started = time.perf_counter()
        batch = batch.localCheckpoint()  # runs the stateful step
        stepped = time.perf_counter()
        statuses, state_rows, baseline_rows = _tally(batch)
        if state_rows:
            _write_state(session, batch.where("record = 'state'"), database, batch_id)
        if baseline_rows:
            _write_baselines(session, batch.where("record = 'baseline'"), database, batch_id)
        added = 0
        if any(status.alerts for status in statuses.values()):
            added = _write_alerts(session, batch, rules, database, statuses)
            if added and on_alerts is not None:
                on_alerts()
        for number, status in sorted(statuses.items()):
            status.added = added if number == max(statuses) else 0
            if number != CLOSED or status.alerts:
                report(status.render())
        if os.environ.get(PHASES_ENV):
            report(f"apply {batch_id}: step {stepped - started:.1f} s, "
                   f"writes {time.perf_counter() - stepped:.1f} s")  # fmt: skip

    clean(spark, root.child(APPLY), report)
    writer = step_rows.writeStream.foreachBatch(apply).queryName("tsa-apply")
    writer = writer.option("checkpointLocation", root.child(APPLY))
    if once:
        writer = writer.trigger(availableNow=True)
    else:  # its source is local and small: look often, so alerts follow their events closely
        writer = writer.trigger(processingTime="1 second")
    try:
        return writer.start()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)
