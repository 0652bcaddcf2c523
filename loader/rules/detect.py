"""`detect`: every rule over history in batch (the backtest), alerts to ``security.alerts``.

The events relation ``cloudtrail`` is the table (or view) given, filtered to ``--since`` /
``--until``, and cached once for all rules. Each rule is evaluated with the semantics of
:mod:`loader.rules.evaluate`; a rule that fails at runtime is reported with its file and the
others still run. Writes are idempotent: an alert id already in the table is not added again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.alerts.model import create_alerts_table
from loader.alerts.store import append_new_alerts
from loader.errors import TsaError, first_line
from loader.rules.evaluate import rule_alerts
from loader.rules.model import Rule
from loader.rules.validate import columns_used
from loader.tables.catalog import run_statements
from loader.tables.cloudtrail_ddl import check_identifier, create_database, sql_string

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class RuleSummary:
    rule: str
    alerts: int = 0
    entities: int = 0
    per_day: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class DetectReport:
    events: int
    summaries: list[RuleSummary]
    added: int = 0
    output: str | None = None

    @property
    def failed(self) -> list[RuleSummary]:
        return [s for s in self.summaries if s.error]

    def render(self) -> str:
        lines = [
            f"events: {self.events:,}",
            "",
            "| rule | alerts | entities | alerts per day |",
            "|---|---|---|---|",
        ]
        for s in self.summaries:
            days = ", ".join(f"{day}: {n}" for day, n in sorted(s.per_day.items())) or "-"
            if s.error:
                days = f"FAILED: {s.error}"
            lines.append(f"| {s.rule} | {s.alerts} | {s.entities} | {days} |")
        lines.append("")
        lines.append(
            f"alerts: {sum(s.alerts for s in self.summaries):,}, new in table: {self.added:,}"
        )
        if self.output:
            lines.append(f"written to {self.output}")
        return "\n".join(lines)


PARTITIONS_PER_CORE = 4


def events_relation(
    spark: SparkSession, table: str, since: str | None, until: str | None
) -> DataFrame:
    """``table`` limited to [since, until) by eventTime (and by day folder, to read less)."""
    events = spark.table(table)
    if since:
        events = events.where(
            f"dt >= {sql_string(since[:10])} AND eventTime >= timestamp {sql_string(since)}"
        )
    if until:
        events = events.where(
            f"dt <= {sql_string(until[:10])} AND eventTime < timestamp {sql_string(until)}"
        )
    return events


def source_events(spark: SparkSession, source: str) -> DataFrame:
    """The events of log files under ``source`` (any level of the layout), read directly with
    the same typing as the ``cloudtrail`` view, without tables in the catalog."""
    from loader.sources.layout import with_layout_columns
    from loader.sources.listing import normalize_source
    from loader.tables.cloudtrail_ddl import RAW_OPTIONS, events_query

    root = normalize_source(source)
    reader = spark.read.schema("Records ARRAY<STRING>").options(**RAW_OPTIONS)
    raw = reader.option("recursiveFileLookup", "true").json(root)
    with_layout_columns(raw).createOrReplaceTempView("__detect_raw")
    return spark.sql(events_query("__detect_raw", file_path="file_path"))


def detect(
    spark: SparkSession,
    rules: list[Rule],
    events: DataFrame,
    database: str,
    output: str | None = None,
) -> DetectReport:
    """Evaluate ``rules`` over ``events``; append new alerts to ``database.alerts``."""
    from pyspark.errors import PySparkException
    from pyspark.storagelevel import StorageLevel

    db = check_identifier(database)
    used = columns_used(rules)
    if used is not None:  # keep only what the rules read: raw_json alone is most of the bytes
        events = events.select(*[c for c in events.columns if c.lower() in used])
    # One partition per log file makes every rule pay a task per file; a few per core halved
    # a simple rule's time on the reference million events (bench/detect.py, README there).
    target = PARTITIONS_PER_CORE * spark.sparkContext.defaultParallelism
    if events.rdd.getNumPartitions() > target:
        events = events.coalesce(target)
    events = events.persist(StorageLevel.MEMORY_AND_DISK)
    events.createOrReplaceTempView("cloudtrail")
    count = events.count()
    batch_id = int(dt.datetime.now(dt.timezone.utc).timestamp())
    summaries: list[RuleSummary] = []
    frames = []
    for rule in rules:
        summary = RuleSummary(rule.name)
        summaries.append(summary)
        try:
            frame = rule_alerts(spark, rule, batch_id).localCheckpoint()
            rows = frame.select("entity", "event_time").collect()
        except PySparkException as exc:
            summary.error = f"{rule.path}: {first_line(exc)}"
            continue
        summary.alerts = len(rows)
        summary.entities = len({r.entity for r in rows})
        summary.per_day = dict(
            Counter(r.event_time.date().isoformat() for r in rows if r.event_time)
        )
        frames.append(frame)
    report = DetectReport(count, summaries, output=output)
    run_statements(spark, [create_database(db), create_alerts_table(db)])
    if frames:
        alerts = frames[0]
        for frame in frames[1:]:
            alerts = alerts.unionByName(frame)
        report.added = append_new_alerts(spark, alerts, db)
        if output:
            _write_jsonl(alerts, output)
    events.unpersist()
    # the rules' relation is detect's own: it must not shadow DATABASE.cloudtrail afterwards
    spark.catalog.dropTempView("cloudtrail")
    return report


def _write_jsonl(alerts: DataFrame, path: str) -> None:
    rows = alerts.orderBy("event_time", "rule", "alert_id").collect()
    try:
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                record = row.asDict()
                for key in ("event_time", "created_at"):
                    if record[key] is not None:
                        record[key] = record[key].isoformat()
                record["details"] = json.loads(record["details"]) if record["details"] else None
                handle.write(json.dumps(record, sort_keys=True) + "\n")
    except OSError as exc:
        raise TsaError(f"--output {path}: cannot write: {exc.strerror}") from exc
