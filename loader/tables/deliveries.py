"""``log_deliveries``: every CloudTrail log file read (by create-hive-table or run), when it
was delivered and what it held; and the ``log_coverage`` view over it. Judging the gaps in it
is :mod:`loader.coverage`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from loader.sql import check_identifier, sql_string
from loader.tables.cloudtrail_ddl import FILES_TABLE, ViewDef

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
        (path, account, region, int(events), time_text(newest))
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


def time_text(moment: dt.datetime | str | None) -> str | None:
    if moment is None or isinstance(moment, str):
        return moment
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ")


def table_exists(spark: SparkSession, db: str, table: str) -> bool:
    return bool(spark.catalog.tableExists(f"{check_identifier(db)}.{table}"))
