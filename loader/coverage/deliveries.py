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
from loader.sql import check_identifier, sql_string
from loader.tables.deliveries import (
    DELIVERIES_TABLE,
    TEXT_TIME,
    time_text,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


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
        rows.append((listed.path, placement.account, placement.region, time_text(moment)))
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
