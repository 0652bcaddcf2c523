"""The tables the engine writes for people to read: ``alerts``, ``alert_deliveries``,
``profile_state`` (and its log) and ``profile_baselines`` (and its log); created the same way
by `detect`, `run` and `deliver`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loader.alerts.model import create_alerts_table
from loader.alerts.outbox import create_deliveries_table
from loader.sql import check_identifier

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STATE_LOG = "profile_state_log"
STATE_VIEW = "profile_state"
BASELINE_LOG = "profile_baseline_log"
BASELINE_VIEW = "profile_baselines"


def profile_state_ddl(db: str) -> list[str]:
    """The log of profile entries each batch changed, and the view of their current values."""
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{STATE_LOG} (rule STRING, entity STRING, "
        "value STRING, first_seen TIMESTAMP, last_seen TIMESTAMP, seen_count BIGINT, "
        "batch_id BIGINT, updated_at TIMESTAMP) USING parquet "
        "COMMENT 'Profile entries as each batch of run left them (seen_count 0: forgotten)'",
        f"CREATE OR REPLACE VIEW {db}.{STATE_VIEW} "
        "COMMENT 'What each profile knows: per rule, entity and value, first and last seen "
        "and how often' AS "
        "SELECT rule, entity, value, first_seen, last_seen, seen_count, updated_at FROM ("
        "SELECT *, row_number() OVER (PARTITION BY rule, entity, value ORDER BY batch_id DESC) "
        f"AS version FROM {db}.{STATE_LOG}) WHERE version = 1 AND seen_count > 0",
        f"CREATE TABLE IF NOT EXISTS {db}.{BASELINE_LOG} (rule STRING, entity STRING, "
        "bucket_start TIMESTAMP, count BIGINT, median DOUBLE, p95 DOUBLE, maximum BIGINT, "
        "buckets BIGINT, score DOUBLE, alerted BOOLEAN, batch_id BIGINT, updated_at TIMESTAMP) "
        "USING parquet COMMENT 'Baseline rules: each closed bucket of each entity as run "
        "judged it'",
        f"CREATE OR REPLACE VIEW {db}.{BASELINE_VIEW} "
        "COMMENT 'Baselines: per rule, entity and closed bucket, its count and the baseline "
        "it was judged against (median, p95, maximum over its history, the robust z-score)' AS "
        "SELECT rule, entity, bucket_start, count, median, p95, maximum, buckets, score, alerted, "
        "updated_at FROM (SELECT *, row_number() OVER (PARTITION BY rule, entity, bucket_start "
        f"ORDER BY batch_id DESC, updated_at DESC) AS version FROM {db}.{BASELINE_LOG}) "
        "WHERE version = 1",
    ]


def create_alert_tables(spark: SparkSession, database: str) -> str:
    """The database and every table above, when missing; the checked database name."""
    from loader.tables.catalog import run_statements
    from loader.tables.cloudtrail_ddl import create_database

    database = check_identifier(database)
    run_statements(
        spark,
        [
            create_database(database),
            create_alerts_table(database),
            create_deliveries_table(database),
            *profile_state_ddl(database),
        ],
    )
    return database
