"""`python -m loader coverage`: every account/region with its span, files, events and delivery
delay; every gap with start, end and reason; the trail stops the events report. Exit code 3
when there is a gap or a stop (for cron), else 0."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.coverage.deliveries import (
    coverage_where,
    deliveries_relation,
    deliveries_table,
    judge_relation,
    trail_events,
)
from loader.coverage.gaps import ALL_REGIONS, Gap, GapSettings, duration_text
from loader.coverage.trails import TrailSpan, trail_spans
from loader.errors import TsaError
from loader.sql import check_identifier, sql_string
from loader.tables.deliveries import DELIVERIES_TABLE, TEXT_TIME, table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GAPS_FOUND = 3


@dataclass
class SeriesLine:
    account: str
    region: str
    first: str
    last: str
    files: int
    events: int
    median_delay: float | None


@dataclass
class CoverageReport:
    database: str
    lines: list[SeriesLine] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    trails: list[TrailSpan] = field(default_factory=list)
    reference: dt.datetime | None = None
    trail_note: str | None = None

    @property
    def stops(self) -> list[TrailSpan]:
        return [s for s in self.trails if s.stop]

    @property
    def exit_code(self) -> int:
        return GAPS_FOUND if self.gaps or self.stops else 0

    def render(self) -> str:
        out = [
            f"log delivery in {self.database}.{DELIVERIES_TABLE}"
            + (f" (judged at {self.reference:%Y-%m-%d %H:%M} UTC)" if self.reference else ""),
            "",
            "| account | region | first file | last file | files | events | median delay |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in self.lines:
            delay = duration_text(s.median_delay) if s.median_delay is not None else "-"
            out.append(
                f"| {s.account} | {s.region} | {s.first} | {s.last} | {s.files:,} | "
                f"{s.events:,} | {delay} |"
            )
        if not self.lines:
            out.append("| (no log file recorded) | | | | | | |")
        out += ["", f"gaps: {len(self.gaps)}"]
        for gap in self.gaps:
            end = f"{gap.end:%Y-%m-%d %H:%M}" if gap.end else "still silent"
            where = "all regions" if gap.region == ALL_REGIONS else gap.region
            out.append(
                f"  {gap.account}/{where}: {gap.start:%Y-%m-%d %H:%M} .. {end}: {gap.reason}"
            )
        out += ["", f"trail stops and changes in the events: {len(self.trails)}"]
        out += [f"  {span.render()}" for span in self.trails]
        if self.trail_note:
            out.append(f"  ({self.trail_note})")
        return "\n".join(out)


def coverage(
    spark: SparkSession,
    database: str,
    settings: GapSettings,
    since: str | None = None,
    until: str | None = None,
    now: dt.datetime | None = None,
    table: str | None = None,
) -> CoverageReport:
    """The coverage report of ``database``'s recorded deliveries and its events' trail stops."""
    db = check_identifier(database)
    if not table_exists(spark, db, DELIVERIES_TABLE):
        raise TsaError(
            f"no table {db}.{DELIVERIES_TABLE}: run `python -m loader create-hive-table` (or "
            "`run`) first; they record every log file they read"
        )
    relation = deliveries_relation(db)
    where = coverage_where(since, until)
    judgement = judge_relation(spark, deliveries_table(db), settings, now, where)
    report = CoverageReport(db, gaps=judgement.gaps, reference=judgement.reference)
    report.lines = _lines(spark, relation, where)
    events = table or f"{db}.cloudtrail"
    if spark.catalog.tableExists(events):
        event_where = coverage_where(since, until, "eventTime")
        if since:
            event_where += f" AND dt >= {sql_string(since[:10])}"
        report.trails = trail_spans(trail_events(spark, events, event_where))
    else:
        report.trail_note = f"no table {events}: trail stops not read"
    return report


def _lines(spark: SparkSession, relation: str, where: str) -> list[SeriesLine]:
    rows = spark.sql(f"""
SELECT account, region, date_format(min(delivered_at), '{TEXT_TIME}') AS first,
       date_format(max(delivered_at), '{TEXT_TIME}') AS last, count(*) AS files,
       coalesce(sum(events), 0) AS events,
       percentile(unix_timestamp(delivered_at) - unix_timestamp(newest_event), 0.5) AS delay
FROM {relation} WHERE {where} GROUP BY account, region ORDER BY account, region""").collect()
    return [
        SeriesLine(r.account, r.region, r.first[:16], r.last[:16], r.files, r.events, r.delay)
        for r in rows
    ]
