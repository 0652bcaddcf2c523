"""`detect`: every rule over history in batch (the backtest), alerts to ``security.alerts``.

The events are the table (or view) given, filtered to ``--since`` / ``--until``, or the log
files under a folder, cached once for all rules. They are evaluated as one batch by the rule
engine (:mod:`loader.engine`): the runner's plan and stateful step, so `detect` raises what a
live run would have. A rule that fails at runtime is reported with its file and the others still
run. Writes are idempotent: an alert id already in the table is not added again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loader.alerts.store import append_new_alerts
from loader.alerts.tables import create_alert_tables
from loader.coverage.alerts import RULE as COVERAGE_RULE
from loader.coverage.enrichment import blind_spots
from loader.engine.evaluate import cache_events, evaluate
from loader.engine.plan import plan_rules
from loader.engine.timing import phase
from loader.errors import TsaError
from loader.rules.model import Rule
from loader.rules.validate import columns_used
from loader.sql import check_identifier, sql_string

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
    blind: list[str] = field(default_factory=list)  # where enrichment could not answer

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
        lines += [f"blind spot: {line}" for line in self.blind]
        return "\n".join(lines)


def events_relation(
    spark: SparkSession, table: str, since: str | None, until: str | None
) -> DataFrame:
    """``table`` limited to [since, until) by eventTime (and by day folder, to read less)."""
    if not spark.catalog.tableExists(table):
        raise TsaError(
            f"no table {table} here: run `python -m loader create-hive-table --source PATH` "
            "first (the embedded catalog is metastore_db/ in the folder you run from), or give "
            "`--source PATH` to read log files directly"
        )
    from loader.tables.cloudtrail_schema import with_derived_columns

    events = with_derived_columns(spark.table(table))
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
    *,
    fuse: bool = True,
    enrichment: Any = None,
    strict: bool = False,
    coverage: Callable[[int], DataFrame] | None = None,
) -> DetectReport:
    """Evaluate ``rules`` over ``events`` as one batch; append new alerts to
    ``database.alerts``. ``fuse=False``: every rule alone (the reference path). ``coverage``:
    the log delivery gap alerts of the batch (:mod:`loader.coverage`), given the batch id."""
    db = check_identifier(database)
    plan = plan_rules(rules, fuse)
    with phase("read events"):
        events, count = cache_events(events, columns_used(rules))
    batch_id = int(dt.datetime.now(dt.timezone.utc).timestamp())
    try:
        evaluation = evaluate(plan, events, batch_id, enrichment=enrichment, strict=strict)
        alerts = evaluation.alerts
        if coverage is not None:
            with phase("coverage"):
                alerts = alerts.unionByName(coverage(batch_id).localCheckpoint())
        rows = alerts.select("rule", "entity", "event_time").collect()
        summaries = _summaries(rules, rows, evaluation.errors)
        if coverage is not None:
            summaries.append(_summary(COVERAGE_RULE, rows, None))
        report = DetectReport(count, summaries, output=output)
        with phase("enrichment blind spots"):
            report.blind = blind_spots(events, enrichment)
        with phase("write alerts"):
            create_alert_tables(spark, db)
            report.added = append_new_alerts(spark, alerts, db)
            if output:
                _write_jsonl(alerts, output)
    finally:
        events.unpersist()
    return report


def _summaries(rules: list[Rule], rows: list[Any], errors: dict[str, str]) -> list[RuleSummary]:
    by_rule: dict[str, list[Any]] = {}
    for row in rows:
        by_rule.setdefault(row.rule, []).append(row)
    return [_summary(rule.name, by_rule.get(rule.name, []), errors.get(rule.name))
            for rule in rules]  # fmt: skip


def _summary(rule: str, rows: list[Any], error: str | None) -> RuleSummary:
    found = [r for r in rows if r.rule == rule]
    return RuleSummary(
        rule, len(found), len({r.entity for r in found}),
        dict(Counter(r.event_time.date().isoformat() for r in found if r.event_time)), error,
    )  # fmt: skip


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
