"""`create-hive-table --kind s3-access-logs`: Hive tables over S3 server access logs.

AWS writes access logs in one of two key layouts (the bucket's logging configuration chooses):

- flat, ``[prefix]YYYY-mm-DD-HH-MM-SS-UniqueString``: one folder, no partitions;
- date-partitioned, ``[prefix]account/region/bucket/YYYY/mm/DD/YYYY-mm-DD-HH-MM-SS-Unique``:
  partitions ``account``, ``region``, ``source_bucket`` and ``dt`` (a query filtering on
  ``dt`` reads only those days).

Tables (names users rely on): ``s3_access_logs_raw`` (``RegexSerDe``, one string per field),
``s3_access_logs_lines`` (the same files, whole lines), the typed view ``s3_access_logs`` and
``s3_access_logs_unparsed`` (each line that does not parse, with its file and why).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.errors import LoaderError
from loader.sources.listing import list_files, normalize_source
from loader.sql import check_identifier, sql_string
from loader.tables.catalog import run_statements
from loader.tables.cloudtrail_ddl import create_database
from loader.tables.s3_access_ddl import (
    create_lines_table,
    create_raw_table,
    matches_sql,
    typed_view_query,
    unparsed_view_query,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RAW, LINES, VIEW, UNPARSED = (
    "s3_access_logs_raw", "s3_access_logs_lines", "s3_access_logs", "s3_access_logs_unparsed",
)  # fmt: skip
_NAME = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[^/]+"
PARTITIONED = re.compile(
    rf"(?:^|/)(\d{{12}})/([a-z0-9-]+)/([^/]+)/(\d{{4}})/(\d{{2}})/(\d{{2}})/{_NAME}$"
)
FLAT = re.compile(rf"(?:^|/){_NAME}$")
PARTITION_COLUMNS = ("account", "region", "source_bucket", "dt")


@dataclass
class S3AccessReport:
    database: str
    layout: str
    files: int = 0
    partitions: int = 0
    parsed: int = 0
    unparsed: int = 0
    skipped: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"{self.database}.{VIEW}: {self.files} log file(s), {self.layout} layout"
            + (f", {self.partitions} partition(s)" if self.partitions else ""),
            f"lines: {self.parsed:,} parsed, {self.unparsed:,} unparsed"
            + (f" (see {self.database}.{UNPARSED})" if self.unparsed else ""),
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) not named like access logs, e.g. "
                         + ", ".join(self.skipped[:3]))  # fmt: skip
        return "\n".join(lines)


def _layout(
    source: str, root: str, report: S3AccessReport
) -> tuple[dict[tuple[str, str, str, str], str], set[str]]:
    """The access log files under ``root``: their date partitions (account, region, bucket,
    day -> folder) or their one flat folder; other files are skipped (in ``report``)."""
    partitions: dict[tuple[str, str, str, str], str] = {}
    flat_folders: set[str] = set()
    for listed in list_files(root):
        relative = listed.path[len(root) :].lstrip("/")
        match = PARTITIONED.search(relative)
        if match:
            account, region, bucket, year, month, day = match.groups()
            partitions[(account, region, bucket, f"{year}-{month}-{day}")] = _parent(listed.path)
        elif FLAT.search(relative):
            flat_folders.add(_parent(listed.path))
        else:
            report.skipped.append(relative)
            continue
        report.files += 1
    if partitions and flat_folders:
        raise LoaderError(
            f"{source}: holds both access-log layouts (flat under {sorted(flat_folders)[0]}, "
            "date-partitioned elsewhere); give each its own --source and --database"
        )
    if len(flat_folders) > 1:
        raise LoaderError(
            f"{source}: flat access logs in {len(flat_folders)} folders ("
            + ", ".join(sorted(flat_folders)[:3])
            + "); point --source at one of them"
        )
    if not partitions and not flat_folders:
        raise LoaderError(f"{source}: no S3 server access log files (names like 2024-01-31-...)")
    return partitions, flat_folders


def create_s3_access_tables(spark: SparkSession, source: str, database: str) -> S3AccessReport:
    """Create or update the tables and views over the access logs under ``source``."""
    root = normalize_source(source)
    db = check_identifier(database)
    report = S3AccessReport(db, "flat")
    partitions, flat_folders = _layout(source, root, report)
    partitioned = bool(partitions)
    location = root if partitioned else next(iter(flat_folders))
    statements = [create_database(db)]
    for table, ddl in ((RAW, create_raw_table), (LINES, create_lines_table)):
        statements.append(_partitioned(ddl(db, table, location), partitioned))
        if partitioned:
            statements += _add_partitions(db, table, partitions)
    run_statements(spark, statements)
    extra = ", " + ", ".join(PARTITION_COLUMNS) if partitioned else ""
    typed = typed_view_query(f"{db}.{RAW}").replace("\nFROM ", f"{extra}\nFROM ", 1)
    unparsed = unparsed_view_query(f"{db}.{LINES}")
    if partitioned:
        unparsed = unparsed.replace(" AS reason ", f" AS reason{extra} ", 1)
    run_statements(spark, [
        f"CREATE OR REPLACE VIEW {db}.{VIEW} COMMENT "
        f"{sql_string('S3 server access log lines, typed')} AS {typed}",
        f"CREATE OR REPLACE VIEW {db}.{UNPARSED} COMMENT "
        f"{sql_string('Access log lines that do not parse, with file and reason')} AS {unparsed}",
    ])  # fmt: skip
    report.layout = "date-partitioned" if partitioned else "flat"
    report.partitions = len(partitions)
    for table in (RAW, LINES):
        spark.catalog.refreshTable(f"{db}.{table}")
    # one pass over the lines: the typed view holds the lines that match, the unparsed view
    # the others
    matches = matches_sql("line")
    counts = spark.sql(
        f"SELECT count_if({matches}) AS parsed, count_if(NOT {matches}) AS unparsed "
        f"FROM {db}.{LINES}"
    ).first()
    report.parsed, report.unparsed = counts.parsed, counts.unparsed
    return report


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "://" in path else os.path.dirname(path)


def _partitioned(ddl: str, partitioned: bool) -> str:
    if not partitioned:
        return ddl
    columns = ", ".join(f"{name} STRING" for name in PARTITION_COLUMNS)
    return ddl.replace("\nROW FORMAT", f"\nPARTITIONED BY ({columns})\nROW FORMAT", 1)


def _add_partitions(
    db: str, table: str, partitions: dict[tuple[str, str, str, str], str]
) -> list[str]:
    specs = []
    for key, location in sorted(partitions.items()):
        values = zip(PARTITION_COLUMNS, key, strict=True)
        spec = ", ".join(f"{name}={sql_string(value)}" for name, value in values)
        specs.append(f"PARTITION ({spec}) LOCATION {sql_string(location)}")
    return [
        f"ALTER TABLE {db}.{table} ADD IF NOT EXISTS " + " ".join(specs[i : i + 100])
        for i in range(0, len(specs), 100)
    ]
