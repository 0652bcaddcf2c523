"""DDL for the CloudTrail tables and views, built as text (tested without Spark)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loader.sql import check_identifier, sql_string
from loader.tables.cloudtrail_schema import (
    DERIVED_FIELDS,
    EVENT_FIELDS,
    INSIGHT_FIELDS,
    Field,
    json_schema,
)
from loader.tables.filecheck import INSIGHT_EVENT_TYPE

RAW_TABLE = "cloudtrail_raw"
INSIGHTS_RAW_TABLE = "cloudtrail_insights_raw"
EVENTS_VIEW = "cloudtrail"
INSIGHTS_VIEW = "cloudtrail_insights"
FILES_TABLE = "cloudtrail_files"
QUARANTINE_VIEW = "cloudtrail_quarantine"

# Options of the raw tables. ignoreCorruptFiles keeps one truncated upload from failing every
# query over the table; such files are listed in cloudtrail_quarantine by create-hive-table.
RAW_OPTIONS = {
    "multiLine": "true",
    "pathGlobFilter": "*.json{,.gz}",
    "ignoreCorruptFiles": "true",
    "mode": "PERMISSIVE",
}
PARTITION_COLUMNS = ("account", "region", "dt")
PARTITIONS_PER_STATEMENT = 200


def create_database(db: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {check_identifier(db)}"


def create_raw_table(db: str, table: str, location: str, comment: str) -> str:
    options = ", ".join(f"{k} {sql_string(v)}" for k, v in RAW_OPTIONS.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {check_identifier(db)}.{table} "
        "(Records ARRAY<STRING>, account STRING, region STRING, dt STRING) "
        f"USING json OPTIONS ({options}) "
        f"PARTITIONED BY ({', '.join(PARTITION_COLUMNS)}) "
        f"LOCATION {sql_string(location)} "
        f"COMMENT {sql_string(comment)}"
    )


def add_partitions(
    db: str, table: str, partitions: Iterable[tuple[str, str, str, str]]
) -> list[str]:
    """ALTER TABLE statements registering (account, region, dt, location), many per statement."""
    specs = [
        f"PARTITION (account={sql_string(a)}, region={sql_string(r)}, dt={sql_string(d)}) "
        f"LOCATION {sql_string(loc)}"
        for a, r, d, loc in partitions
    ]
    return [
        f"ALTER TABLE {check_identifier(db)}.{table} ADD IF NOT EXISTS "
        + " ".join(specs[i : i + PARTITIONS_PER_STATEMENT])
        for i in range(0, len(specs), PARTITIONS_PER_STATEMENT)
    ]


@dataclass(frozen=True)
class ViewDef:
    """A view as its parts, so the catalog's stored query can be compared before replacing."""

    db: str
    name: str
    comment: str
    query: str

    def statement(self) -> str:
        return (
            f"CREATE OR REPLACE VIEW {self.db}.{self.name} "
            f"COMMENT {sql_string(self.comment)} AS {self.query}"
        )


def _events_from(
    relation: str, fields: Sequence[Field], file_path: str = "_metadata.file_path"
) -> str:
    return (
        "SELECT account, region, dt, source_file, raw_json, "
        f"from_json(raw_json, {sql_string(json_schema(tuple(fields)))}) AS e "
        f"FROM (SELECT account, region, dt, {file_path} AS source_file, Records "
        f"FROM {relation}) LATERAL VIEW explode(Records) r AS raw_json "
        # an element of Records that is not an object is no event (its file is listed in the
        # quarantine with the element): no row of NULLs for it
        "WHERE startswith(raw_json, '{')"
    )


def _select_list(fields: Sequence[Field]) -> str:
    columns = [f.select_sql() for f in fields]
    columns += ["account", "region", "dt", "source_file", "raw_json"]
    return ",\n  ".join(columns)


def _is_insight() -> str:
    """True for Insights events. The substring test comes first so that, for ordinary events,
    the filter never makes Spark parse the event a second time (pruning gives the filter its
    own from_json, separate from the one of the selected columns)."""
    marker = sql_string(f"%{INSIGHT_EVENT_TYPE}%")
    return (
        f"raw_json LIKE {marker} AND coalesce(e.eventType, '') = {sql_string(INSIGHT_EVENT_TYPE)}"
    )


def events_query(raw_relation: str, file_path: str = "_metadata.file_path") -> str:
    """The events of a raw relation (Records ARRAY<STRING> plus account, region, dt); a
    relation that is not a file table names the column holding each row's file."""
    return (
        f"SELECT\n  {_select_list(EVENT_FIELDS + DERIVED_FIELDS)}\n"
        f"FROM ({_events_from(raw_relation, EVENT_FIELDS, file_path)})\n"
        f"WHERE NOT ({_is_insight()})"
    )


def events_view(db: str) -> ViewDef:
    query = events_query(f"{db}.{RAW_TABLE}")
    comment = "CloudTrail events, one row per event, typed; raw_json keeps all"
    return ViewDef(check_identifier(db), EVENTS_VIEW, comment, query)


def insights_view(db: str) -> ViewDef:
    """Insights events from the CloudTrail-Insight folders, and any found among normal logs."""
    check_identifier(db)
    union = (
        f"{_events_from(f'{db}.{INSIGHTS_RAW_TABLE}', INSIGHT_FIELDS)}\nUNION ALL\n"
        f"{_events_from(f'{db}.{RAW_TABLE}', INSIGHT_FIELDS)}"
    )
    query = f"SELECT\n  {_select_list(INSIGHT_FIELDS)}\nFROM ({union})\nWHERE {_is_insight()}"
    return ViewDef(db, INSIGHTS_VIEW, "CloudTrail Insights events", query)


def quarantine_view(db: str) -> ViewDef:
    query = (
        "SELECT path, kind, account, region, dt, size, modified, reason, checked_at FROM ("
        "SELECT *, row_number() OVER (PARTITION BY path ORDER BY checked_at DESC) AS version "
        f"FROM {check_identifier(db)}.{FILES_TABLE}) "
        "WHERE version = 1 AND status IN ('quarantined', 'partial')"
    )
    comment = "Log files that could not be loaded, or loaded in part, with the reason"
    return ViewDef(db, QUARANTINE_VIEW, comment, query)


def views(db: str) -> list[ViewDef]:
    return [events_view(db), insights_view(db), quarantine_view(db)]


def create_files_table(db: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {check_identifier(db)}.{FILES_TABLE} ("
        "path STRING, kind STRING, account STRING, region STRING, dt STRING, size BIGINT, "
        "modified TIMESTAMP, status STRING, events BIGINT, insight_events BIGINT, "
        "reason STRING, checked_at TIMESTAMP) USING parquet "
        f"COMMENT {sql_string('Every log file create-hive-table has seen, with its check result')}"
    )
