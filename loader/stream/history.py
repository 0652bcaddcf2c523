"""`run --history-table`: replay history from the materialized Parquet table, not raw JSON.

When a checkpoint starts, the days (account, region, day) that ``materialize`` converted and
whose raw files have not changed since (same count, total size and newest modification: its
``materialized_days`` fingerprint) are taken from the Parquet table, in the runner's first
batch. Every other day, and every file that lands later, is read raw: the raw stream leaves the
chosen days' files out by their place in the layout, and Spark does not even open them (a
filter on the file's path prunes files). So no event is read twice and none is skipped at the
seam, whatever was materialized when.

The choice is written to ``CHECKPOINT/history.json`` before the first batch, so a restarted
runner (even one killed in its first batch) replays exactly the same days.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loader.errors import ConfigError
from loader.sources.layout import LOG_SUFFIXES, LayoutMismatch, place
from loader.sources.listing import list_files
from loader.sql import sql_string
from loader.stream.checkpoint import OBSERVE, Folder
from loader.tables.materialize import DAYS_TABLE, Fingerprint

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

HISTORY_FILE = "history.json"
Day = tuple[str, str, str]  # account, region, dt


@dataclass(frozen=True)
class History:
    table: str  # database.table
    days: tuple[Day, ...]

    def events(self, session: SparkSession) -> DataFrame:
        """The chosen days' events from the table."""
        from loader.tables.cloudtrail_schema import with_derived_columns

        frame = with_derived_columns(session.table(self.table))
        if not self.days:
            return frame.limit(0)
        return frame.where(f"concat_ws('/', account, region, dt) IN ({_keys(self.days)})")

    def raw_filter(self) -> str | None:
        """SQL over the raw stream's layout columns: the files to read raw."""
        if not self.days:
            return None
        return f"NOT (concat_ws('/', account, region, dt) IN ({_keys(self.days)}))"


def _keys(days: tuple[Day, ...]) -> str:
    return ", ".join(sql_string("/".join(day)) for day in days)


def history(spark: SparkSession, table: str, source: str, checkpoint: str) -> History:
    """The history a checkpoint replays from ``table``: chosen now for a new checkpoint,
    read back for one that has started.

    Raises:
        ConfigError: the table or its ``materialized_days`` is missing, or the checkpoint
            started without this table.
    """
    root = Folder(spark, checkpoint)
    if root.exists(HISTORY_FILE):
        stored = json.loads(root.read_text(HISTORY_FILE))
        if stored["table"] != table:
            raise ConfigError(
                f"--history-table {table}: checkpoint {checkpoint} replayed its history from "
                f"{stored['table']}; give that table or a new --checkpoint"
            )
        return History(stored["table"], tuple(tuple(day) for day in stored["days"]))  # type: ignore[misc]
    if Folder(spark, root.child(OBSERVE)).exists("commits"):
        raise ConfigError(
            f"--history-table {table}: checkpoint {checkpoint} has already read its history "
            "from the raw files; the history table is for a new --checkpoint"
        )
    chosen = History(table, tuple(sorted(_unchanged_days(spark, table, source))))
    root.make()
    root.write_text(HISTORY_FILE, json.dumps({"table": table, "days": chosen.days}))
    return chosen


def _unchanged_days(spark: SparkSession, table: str, source: str) -> set[Day]:
    database, _, name = table.rpartition(".")
    if not spark.catalog.tableExists(table):
        raise ConfigError(f"--history-table {table}: no such table (run materialize first)")
    days_table = f"{database}.{DAYS_TABLE}" if database else DAYS_TABLE
    if not spark.catalog.tableExists(days_table):
        raise ConfigError(
            f"--history-table {table}: {days_table} is missing; the table must be one that "
            "materialize made"
        )
    spark.catalog.refreshTable(days_table)
    rows = spark.sql(
        "SELECT account, region, dt, files, bytes, newest FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY account, region, dt ORDER BY converted_at DESC) AS version FROM "
        f"{days_table}) WHERE version = 1"
    ).collect()
    converted = {(r.account, r.region, r.dt): Fingerprint(r.files, r.bytes, r.newest) for r in rows}
    return {day for day, now in raw_fingerprints(source).items() if converted.get(day) == now}


def raw_fingerprints(source: str) -> dict[Day, Fingerprint]:
    """What materialize records of a day, for every CloudTrail day folder under ``source``."""
    found: dict[Day, list[tuple[int, float]]] = {}
    for listed in list_files(source):
        try:
            placed = place(listed.path)
        except LayoutMismatch:
            continue
        if placed is None or placed.kind != "cloudtrail" or not listed.path.endswith(LOG_SUFFIXES):
            continue
        found.setdefault(placed.partition, []).append((listed.size, listed.modified))
    return {
        day: Fingerprint(len(files), sum(size for size, _ in files), max(m for _, m in files))
        for day, files in found.items()
    }
