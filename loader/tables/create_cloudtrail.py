"""`create-hive-table`: register CloudTrail logs as persistent tables, incrementally.

1. list the source and place every file in the CloudTrail layout;
2. check the content of files not seen before (on executors) and record every file with its
   outcome in ``cloudtrail_files`` (bad ones show up in ``cloudtrail_quarantine``);
3. register new account/region/day partitions with their folders as explicit locations;
4. replace the views whose SQL this release changed (they hold only SQL text, no data).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from loader.errors import LoaderError
from loader.progress import Progress
from loader.sources.layout import LayoutMismatch, ListedFile, Placement, place
from loader.sources.listing import list_files, normalize_source
from loader.tables import cloudtrail_ddl as ddl
from loader.tables.catalog import partition_locations, run_statements, view_query
from loader.tables.deliveries import backfill_from_files, ensure_tables, record_files
from loader.tables.filecheck import LOADED, PARTIAL, QUARANTINED, SKIPPED, check_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RAW_TABLE_BY_KIND = {"cloudtrail": ddl.RAW_TABLE, "insight": ddl.INSIGHTS_RAW_TABLE}
FILE_ROW_SCHEMA = (
    "path string, kind string, account string, region string, dt string, size bigint, "
    "modified timestamp, status string, events bigint, insight_events bigint, reason string"
)
SHOWN_PROBLEMS = 20
CHECK_BATCH = 2_000  # files per Spark job: bounds driver memory and paces the progress line


class FileRow(NamedTuple):
    """One file as recorded in cloudtrail_files (FILE_ROW_SCHEMA); status None = to check."""

    path: str
    kind: str
    account: str | None
    region: str | None
    dt: str | None
    size: int
    modified: dt.datetime
    status: str | None
    events: int
    insight_events: int
    reason: str | None


@dataclass
class CreateReport:
    """What one create-hive-table run found and changed."""

    source: str
    database: str
    files_listed: int = 0
    files_new: int = 0
    partitions_added: list[tuple[str, str, str, str]] = field(default_factory=list)
    events_new: int = 0
    insight_events_new: int = 0
    quarantined_new: list[tuple[str, str]] = field(default_factory=list)
    quarantined_total: int = 0
    digests_new: int = 0
    ignored: int = 0
    ignored_examples: list[str] = field(default_factory=list)

    def render(self) -> str:
        added = [p for p in self.partitions_added if p[0] == ddl.RAW_TABLE]
        lines = [
            f"source: {self.source}",
            f"files: {self.files_listed:,} listed, {self.files_new:,} new",
            f"{self.database}.{ddl.RAW_TABLE}: {len(added):,} partitions added "
            f"({_distinct(added, 1)} accounts, {_distinct(added, 2)} regions, "
            f"{_distinct(added, 3)} days)",
            f"events in new files: {self.events_new:,} "
            f"(+ {self.insight_events_new:,} Insights events in "
            f"{self.database}.{ddl.INSIGHTS_VIEW})",
            f"quarantined: {len(self.quarantined_new):,} new file(s), {self.quarantined_total:,} "
            f"in all (query {self.database}.{ddl.QUARANTINE_VIEW})",
        ]
        for path, reason in self.quarantined_new[:SHOWN_PROBLEMS]:
            lines.append(f"  {path}: {reason}")
        if len(self.quarantined_new) > SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.quarantined_new) - SHOWN_PROBLEMS} more")
        lines.append(f"digest files skipped: {self.digests_new:,} new")
        lines.append(
            f"log delivery: {self.database}.log_coverage per account, region and hour; "
            "`python -m loader coverage` for gaps"
        )
        if self.ignored:
            examples = ", ".join(self.ignored_examples)
            lines.append(f"not CloudTrail logs, ignored: {self.ignored:,} (e.g. {examples})")
        return "\n".join(lines)


def _distinct(partitions: list[tuple[str, str, str, str]], index: int) -> int:
    return len({p[index] for p in partitions})


@dataclass
class _Listing:
    """Files of one source, sorted into what the layout makes of them."""

    rows: list[FileRow] = field(default_factory=list)
    partitions: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    listed: int = 0
    ignored: int = 0
    ignored_examples: list[str] = field(default_factory=list)


def create_cloudtrail_tables(spark: SparkSession, source: str, database: str) -> CreateReport:
    """Create or update the CloudTrail tables of ``database`` from ``source``."""
    root = normalize_source(source)
    db = ddl.check_identifier(database)
    run_statements(
        spark,
        [
            ddl.create_database(db),
            ddl.create_raw_table(db, ddl.RAW_TABLE, root, "CloudTrail log files, raw events"),
            ddl.create_raw_table(
                db, ddl.INSIGHTS_RAW_TABLE, root, "CloudTrail Insights log files, raw events"
            ),
            ddl.create_files_table(db),
        ],
    )
    upgraded = ensure_tables(spark, db) and spark.table(f"{db}.{ddl.FILES_TABLE}").take(1)
    known = {table: partition_locations(spark, db, table) for table in RAW_TABLE_BY_KIND.values()}
    listing = _list_source(root, known)
    if listing.listed and not listing.rows:
        raise LoaderError(
            f"{source}: {listing.listed:,} files but none in the CloudTrail layout "
            "AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz "
            f"(e.g. {', '.join(listing.ignored_examples)})"
        )
    report = CreateReport(
        source=root,
        database=db,
        files_listed=listing.listed,
        ignored=listing.ignored,
        ignored_examples=listing.ignored_examples,
    )
    if listing.rows:
        _check_new_files(spark, db, listing.rows, report)
    new_partitions = [
        (table, *key, location)
        for (table, *key), location in sorted(listing.partitions.items())
        if tuple(key) not in known[table]
    ]
    for table in RAW_TABLE_BY_KIND.values():
        run_statements(
            spark,
            ddl.add_partitions(db, table, [p[1:] for p in new_partitions if p[0] == table]),
        )
    report.partitions_added = [(t, a, r, d) for t, a, r, d, _ in new_partitions]
    # Views are replaced only when this release's SQL differs: a rerun changes nothing.
    run_statements(
        spark, [v.statement() for v in ddl.views(db) if view_query(spark, db, v.name) != v.query]
    )
    report.quarantined_total = spark.table(f"{db}.{ddl.QUARANTINE_VIEW}").count()
    if upgraded:
        backfill_from_files(spark, db)
    return report


def _list_source(root: str, known: dict[str, dict[tuple[str, ...], str]]) -> _Listing:
    listing = _Listing()
    progress = Progress(f"listing {root}")
    for listed in list_files(root):
        listing.listed += 1
        progress.advance(detail=listed.path[-60:])
        try:
            placement = place(listed.path)
        except LayoutMismatch as exc:
            listing.rows.append(_row(listed, None, QUARANTINED, str(exc)))
            continue
        if placement is None:
            listing.ignored += 1
            if len(listing.ignored_examples) < 3:
                listing.ignored_examples.append(listed.path)
            continue
        if placement.kind == "digest":
            listing.rows.append(_row(listed, placement, SKIPPED, "CloudTrail digest file"))
            continue
        table = RAW_TABLE_BY_KIND[placement.kind]
        key = (table, *placement.partition)
        chosen = known[table].get(placement.partition) or listing.partitions.setdefault(
            key, placement.directory
        )
        if chosen.rstrip("/") != placement.directory.rstrip("/"):
            reason = (
                f"partition account={placement.account}/region={placement.region}/"
                f"dt={placement.dt} of {table} is already the folder {chosen}; a second folder "
                "for the same account, region and day (two trails?) cannot be registered. "
                "Load it into another --database."
            )
            listing.rows.append(_row(listed, placement, QUARANTINED, reason))
            continue
        listing.rows.append(_row(listed, placement, None, None))
    progress.close()
    return listing


def _row(
    listed: ListedFile, placement: Placement | None, status: str | None, reason: str | None
) -> FileRow:
    modified = dt.datetime.fromtimestamp(listed.modified, tz=dt.timezone.utc)
    kind = placement.kind if placement else "cloudtrail"
    account, region, day = placement.partition if placement else (None, None, None)
    return FileRow(
        listed.path, kind, account, region, day, listed.size, modified, status, 0, 0, reason
    )


def _check_new_files(
    spark: SparkSession, db: str, rows: list[FileRow], report: CreateReport
) -> None:
    """Check the content of files not seen before and append them to the files table."""
    listed = spark.createDataFrame(rows, FILE_ROW_SCHEMA)
    seen = spark.table(f"{db}.{ddl.FILES_TABLE}").select("path", "size", "modified")
    new_files = listed.join(seen, ["path", "size", "modified"], "left_anti").select(listed.columns)
    new = [FileRow(*r) for r in new_files.collect()]
    undecided = [r for r in new if r.status is None]
    results = [r for r in new if r.status is not None]
    newest: dict[str, str | None] = {}
    progress = Progress("checking new files")
    parallelism = max(spark.sparkContext.defaultParallelism, 1)
    for start in range(0, len(undecided), CHECK_BATCH):
        batch = undecided[start : start + CHECK_BATCH]
        paths = [r.path for r in batch]
        slices = min(len(paths), parallelism * 4)
        outcomes = spark.sparkContext.parallelize(paths, slices).map(check_path).collect()
        for row, outcome in zip(batch, outcomes, strict=True):
            newest[row.path] = outcome.newest_event
            results.append(
                row._replace(
                    status=outcome.status,
                    events=outcome.events,
                    insight_events=outcome.insight_events,
                    reason=outcome.reason,
                )
            )
        progress.advance(len(batch))
    progress.close()
    if results:
        checked_at = dt.datetime.now(tz=dt.timezone.utc)
        spark.createDataFrame(
            [(*r, checked_at) for r in results], FILE_ROW_SCHEMA + ", checked_at timestamp"
        ).write.insertInto(f"{db}.{ddl.FILES_TABLE}")
    delivered = [
        (r.path, r.account, r.region, r.events, newest.get(r.path))
        for r in results if r.kind == "cloudtrail" and r.status in (LOADED, PARTIAL)
    ]  # fmt: skip
    record_files(spark, db, delivered, "create-hive-table")
    report.files_new = len(results)
    report.events_new = sum(r.events for r in results)
    report.insight_events_new = sum(r.insight_events for r in results)
    report.digests_new = sum(1 for r in results if r.kind == "digest")
    report.quarantined_new = sorted(
        (r.path, r.reason) for r in results if r.status in (QUARANTINED, PARTIAL)
    )
