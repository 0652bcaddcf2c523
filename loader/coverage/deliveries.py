"""Log deliveries in the catalog: ``log_deliveries`` (one row per log file read) and the
``log_coverage`` view over it, and the Spark side of judging gaps.

``create-hive-table`` records every CloudTrail log file it loaded (events counted and newest
event found by its content check); ``run`` records the files of every batch it read. The gap
statistics are computed by Spark over any number of files; only one row per series and the
intervals longer than the minimum gap reach the driver.

Times cross between Spark and Python as UTC text (``yyyy-MM-dd HH:mm:ss``), so neither the
driver's time zone nor pyspark's conversions can move them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from loader.coverage.gaps import (
    ALL_REGIONS,
    LEFT_OUT,
    GapSettings,
    Interval,
    Judgement,
    Series,
    judge,
)
from loader.coverage.trails import TRAIL_EVENTS, TrailEvent
from loader.tables.cloudtrail_ddl import FILES_TABLE, ViewDef, check_identifier, sql_string

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DELIVERIES_TABLE = "log_deliveries"
COVERAGE_VIEW = "log_coverage"
DELIVERY_COLUMNS = (
    "path STRING, account STRING, region STRING, delivered_at TIMESTAMP, events BIGINT, "
    "newest_event TIMESTAMP, recorded_by STRING, recorded_at TIMESTAMP"
)
TEXT_TIME = "yyyy-MM-dd HH:mm:ss"
# the timestamp CloudTrail writes into a log file's name, as SQL over a path column
STAMP_SQL = (
    "try_to_timestamp(regexp_extract({path}, '_([0-9]{{8}}T[0-9]{{4}})Z_[^/]*$', 1), "
    "\"yyyyMMdd'T'HHmm\")"
)


def create_deliveries_table(db: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {check_identifier(db)}.{DELIVERIES_TABLE} "
        f"({DELIVERY_COLUMNS}) USING parquet COMMENT "
        f"{sql_string('Every CloudTrail log file read, when it was delivered and what it held')}"
    )


def coverage_view(db: str) -> ViewDef:
    """Per account, region and hour of delivery: files, events, the newest event, and the
    delivery delay (the file's written time minus its newest event), median and maximum."""
    db = check_identifier(db)
    query = (
        "SELECT account, region, date_trunc('HOUR', delivered_at) AS hour, count(*) AS files, "
        "sum(events) AS events, max(newest_event) AS newest_event, "
        "percentile(delay_seconds, 0.5) AS median_delay_seconds, "
        "max(delay_seconds) AS max_delay_seconds FROM ("
        "SELECT *, unix_timestamp(delivered_at) - unix_timestamp(newest_event) AS delay_seconds, "
        "row_number() OVER (PARTITION BY path ORDER BY recorded_at) AS n "
        f"FROM {db}.{DELIVERIES_TABLE}) WHERE n = 1 GROUP BY 1, 2, 3"
    )
    comment = "Log delivery per account, region and hour: files, events, newest event, delay"
    return ViewDef(db, COVERAGE_VIEW, comment, query)


def ensure_tables(spark: SparkSession, db: str) -> bool:
    """The deliveries table and the coverage view (replaced only when its SQL changed); True
    when the table was created now."""
    from loader.tables.catalog import run_statements, view_query

    created = not table_exists(spark, db, DELIVERIES_TABLE)
    run_statements(spark, [create_deliveries_table(db)])
    view = coverage_view(db)
    if view_query(spark, db, view.name) != view.query:
        run_statements(spark, [view.statement()])
    return created


def record_files(
    spark: SparkSession,
    db: str,
    rows: Iterable[tuple[str, str | None, str | None, int, dt.datetime | str | None]],
    recorded_by: str,
) -> None:
    """Record (path, account, region, events, newest event) for the files not recorded yet.
    The delivery time comes from the file's name."""
    rows = [
        (path, account, region, int(events), _text(newest))
        for path, account, region, events, newest in rows
    ]
    if rows:
        frame = spark.createDataFrame(
            rows, "path string, account string, region string, events bigint, newest string"
        )
        record_frame(spark, db, frame, recorded_by)


def record_frame(spark: SparkSession, db: str, frame: DataFrame, recorded_by: str) -> None:
    """Append the files of ``frame`` (path, account, region, events, newest: a timestamp or its
    UTC text) that the table does not hold yet: one job, so a replayed batch or a rerun adds
    nothing twice."""
    table = f"{db}.{DELIVERIES_TABLE}"
    view = f"__deliveries_{recorded_by.replace('-', '_')}"
    frame.createOrReplaceTempView(view)
    spark.catalog.refreshTable(table)
    spark.sql(f"""
INSERT INTO {table}
SELECT f.path, f.account, f.region, {STAMP_SQL.format(path="f.path")}, f.events,
       try_cast(f.newest AS TIMESTAMP), {sql_string(recorded_by)}, current_timestamp()
FROM {view} f LEFT ANTI JOIN {table} d ON d.path = f.path
WHERE {STAMP_SQL.format(path="f.path")} IS NOT NULL""")
    spark.catalog.dropTempView(view)


def backfill_from_files(spark: SparkSession, db: str) -> None:
    """Record the loaded files of ``cloudtrail_files`` that ``log_deliveries`` lacks (files
    checked by a release without it): their newest event is unknown (NULL)."""
    files = spark.sql(
        "SELECT path, account, region, events, CAST(NULL AS TIMESTAMP) AS newest FROM ("
        "SELECT *, row_number() OVER (PARTITION BY path ORDER BY checked_at DESC) AS version "
        f"FROM {db}.{FILES_TABLE}) WHERE version = 1 AND kind = 'cloudtrail' "
        "AND status IN ('loaded', 'partial')"
    )
    record_frame(spark, db, files, "backfill")


def _text(moment: dt.datetime | str | None) -> str | None:
    if moment is None or isinstance(moment, str):
        return moment
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ")


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def series_sql(relation: str, settings: GapSettings, where: str = "true") -> str:
    """Per series (account and region, and account in all regions): files, first, last, p99
    interval; and the intervals longer than the minimum gap. One query, one small result."""
    return f"""
WITH d AS (
  SELECT DISTINCT account, region, delivered_at FROM {relation}
  WHERE delivered_at IS NOT NULL AND account IS NOT NULL AND ({where})
), s AS (
  SELECT account, region, delivered_at FROM d
  UNION
  SELECT account, {sql_string(ALL_REGIONS)} AS region, delivered_at FROM d
), i AS (
  SELECT account, region, delivered_at,
         lag(delivered_at) OVER (PARTITION BY account, region ORDER BY delivered_at) AS prev
  FROM s
), r AS (
  SELECT *, unix_timestamp(delivered_at) - unix_timestamp(prev) AS gap,
         row_number() OVER (PARTITION BY account, region
                            ORDER BY unix_timestamp(delivered_at) - unix_timestamp(prev) DESC
                            NULLS LAST) AS longest,
         count(prev) OVER (PARTITION BY account, region) AS intervals
  FROM i
)
SELECT 'series' AS what, account, region, count(*) AS files,
       date_format(min(delivered_at), '{TEXT_TIME}') AS a,
       date_format(max(delivered_at), '{TEXT_TIME}') AS b,
       percentile(CASE WHEN longest > greatest(1, floor(intervals * {LEFT_OUT})) THEN gap END,
                  0.99) AS p99
FROM r GROUP BY account, region
UNION ALL
SELECT 'interval', account, region, 0, date_format(prev, '{TEXT_TIME}'),
       date_format(delivered_at, '{TEXT_TIME}'), NULL
FROM r WHERE gap > {float(settings.min_gap)}
"""


def judge_relation(
    spark: SparkSession,
    relation: str,
    settings: GapSettings,
    reference: dt.datetime | None = None,
    where: str = "true",
) -> Judgement:
    """The gaps of the deliveries in ``relation`` (columns account, region, delivered_at)."""
    series, intervals = [], []
    for row in spark.sql(series_sql(relation, settings, where)).collect():
        if row.what == "series":
            first, last = _time(row.a), _time(row.b)
            assert first is not None and last is not None
            series.append(Series(row.account, row.region, row.files, first, last, row.p99))
        else:
            start, end = _time(row.a), _time(row.b)
            assert start is not None and end is not None
            intervals.append(Interval(row.account, row.region, start, end))
    return judge(series, intervals, settings, reference)


def deliveries_table(db: str) -> str:
    """What gaps are judged over: the table itself (a file recorded twice is one delivery for
    the judgement, which reads distinct times)."""
    return f"{check_identifier(db)}.{DELIVERIES_TABLE}"


def deliveries_relation(db: str) -> str:
    """The deliveries, one row per file (the first record of a path wins)."""
    return (
        "(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY path ORDER BY recorded_at) "
        f"AS n FROM {check_identifier(db)}.{DELIVERIES_TABLE}) WHERE n = 1)"
    )


def listing_relation(spark: SparkSession, source: str) -> str:
    """The CloudTrail log files under ``source`` as a deliveries relation (a temporary view),
    from their names alone: what `detect --source` judges."""
    from loader.coverage.gaps import delivered_at
    from loader.sources.layout import LayoutMismatch, place
    from loader.sources.listing import list_files, normalize_source

    rows = []
    for listed in list_files(normalize_source(source)):
        try:
            placement = place(listed.path)
        except LayoutMismatch:
            continue
        if placement is None or placement.kind != "cloudtrail":
            continue
        moment = delivered_at(
            listed.path, dt.datetime.fromtimestamp(listed.modified, dt.timezone.utc)
        )
        rows.append((listed.path, placement.account, placement.region, _text(moment)))
    frame = spark.createDataFrame(
        rows, "path string, account string, region string, delivered string"
    ).selectExpr("path", "account", "region", "CAST(delivered AS TIMESTAMP) AS delivered_at")
    frame.createOrReplaceTempView("__coverage_listing")
    return "__coverage_listing"


TRAIL_EVENTS_SQL = """
SELECT date_format(eventTime, '{time}') AS event_time, eventName AS event_name,
       recipientAccountId AS account, awsRegion AS region,
       get_json_object(requestParameters, '$.name') AS trail,
       coalesce(nullif(userIdentity.arn, ''), userIdentity.principalId) AS principal,
       errorCode AS error
FROM {table} WHERE eventName IN ({names}) AND ({where})
"""


def trail_events(spark: SparkSession, table: str, where: str = "true") -> list[TrailEvent]:
    if "raw_json" in spark.table(table).columns:
        # a text test first: only the events that can match are parsed (years of logs)
        words = ("Logging", "Trail", "EventSelectors")
        where += " AND (" + " OR ".join(f"raw_json LIKE '%{w}%'" for w in words) + ")"
    sql = TRAIL_EVENTS_SQL.format(
        time=TEXT_TIME, table=table, where=where,
        names=", ".join(sql_string(n) for n in TRAIL_EVENTS),
    )  # fmt: skip
    events = []
    for row in spark.sql(sql).collect():
        moment = _time(row.event_time)
        if moment is not None:
            events.append(TrailEvent(
                moment, row.event_name, row.account, row.region, row.trail, row.principal,
                row.error,
            ))  # fmt: skip
    return events


def coverage_where(since: str | None, until: str | None, column: str = "delivered_at") -> str:
    parts = []
    if since:
        parts.append(f"{column} >= timestamp {sql_string(since)}")
    if until:
        parts.append(f"{column} < timestamp {sql_string(until)}")
    return " AND ".join(parts) or "true"


def table_exists(spark: SparkSession, db: str, table: str) -> bool:
    return bool(spark.catalog.tableExists(f"{check_identifier(db)}.{table}"))
