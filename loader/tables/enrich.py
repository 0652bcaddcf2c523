"""`enrich`: GeoIP and Tor facts per distinct source address, in a table spark-sql can join.

spark-sql and beeline (without `serve`) cannot call Python UDFs, so `enrich` computes the UDFs
once per distinct sourceIPAddress value into ``ip_enrichment`` and the view
``cloudtrail_enriched`` joins it to the events. Runs are incremental:

- only partitions holding files that create-hive-table checked since the last run are scanned,
  and only addresses not in the table yet are looked up;
- when the GeoIP databases change (another type or build), every row is recomputed; when only
  the Tor list changes, only ``is_tor`` is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loader.errors import ConfigError, LoaderError
from loader.tables import cloudtrail_ddl as ct
from loader.tables import enrichment_ddl as ddl
from loader.tables.catalog import run_statements, view_query

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from udfs.spark import Enrichment

PARTITION_FILTER_LIMIT = 500  # beyond this many partitions, filter on days only


@dataclass
class EnrichReport:
    database: str
    scanned: str = ""
    new_addresses: int = 0
    total: int = 0
    recomputed: str = ""

    def render(self) -> str:
        lines = [
            f"scanned: {self.scanned}",
            f"{self.database}.{ddl.ENRICHMENT_TABLE}: {self.new_addresses:,} new source "
            f"addresses enriched, {self.total:,} in all",
        ]
        if self.recomputed:
            lines.append(f"recomputed: {self.recomputed}")
        lines.append(
            f"{self.database}.{ddl.ENRICHED_VIEW}: ready (spark-sql --database {self.database} "
            f"-e 'SELECT country, count(*) FROM {ddl.ENRICHED_VIEW} GROUP BY 1')"
        )
        return "\n".join(lines)


def geoip_fingerprint(enrichment: Enrichment) -> str:
    return ";".join(
        f"{role}={info.database_type}@{info.build_epoch}"
        for role, info in sorted(enrichment.databases.items())
    )


def tor_fingerprint(enrichment: Enrichment) -> str:
    if enrichment.tor is None:
        return ""
    newest = enrichment.tor.snapshots[-1]
    digest = hashlib.sha1("\n".join(sorted(newest.addresses)).encode()).hexdigest()[:12]
    return f"{newest.time.isoformat()}#{digest}"


def enrich(spark: SparkSession, database: str, enrichment: Enrichment) -> EnrichReport:
    """Bring ``database.ip_enrichment`` and ``cloudtrail_enriched`` up to date."""
    db = ct.check_identifier(database)
    if not enrichment.functions:
        raise ConfigError(
            "enrich needs at least one of --geoip-city-db, --geoip-country-db, --geoip-asn-db "
            "or --tor-exit-list (or the same keys in the config file)"
        )
    if view_query(spark, db, ct.EVENTS_VIEW) is None:
        raise LoaderError(f"no {db}.{ct.EVENTS_VIEW} view: run create-hive-table first")
    run_statements(spark, [ddl.create_enrichment_table(db)])
    table = f"{db}.{ddl.ENRICHMENT_TABLE}"
    for name in (ct.FILES_TABLE, ct.RAW_TABLE, ddl.ENRICHMENT_TABLE):
        # a long-lived session (serve, run) may hold file listings from before other writers
        spark.catalog.refreshTable(f"{db}.{name}")
    before = _properties(spark, table)
    now = {
        ddl.PROP_GEOIP: geoip_fingerprint(enrichment),
        ddl.PROP_TOR: tor_fingerprint(enrichment),
    }
    report = EnrichReport(db)
    available = set(enrichment.functions)
    existing = spark.table(table)
    if before.get(ddl.PROP_GEOIP, now[ddl.PROP_GEOIP]) != now[ddl.PROP_GEOIP]:
        existing = _recompute(existing, ddl.ENRICHMENT_COLUMNS, available)
        report.recomputed = "all addresses (the GeoIP databases changed)"
    elif before.get(ddl.PROP_TOR, now[ddl.PROP_TOR]) != now[ddl.PROP_TOR]:
        existing = _recompute(existing, (ddl.TOR_COLUMN,), available)
        report.recomputed = "is_tor of all addresses (the Tor exit list changed)"
    events, report.scanned, through = _events_to_scan(spark, db, before.get(ddl.PROP_FILES_THROUGH))
    addresses = (
        events.select(events.sourceIPAddress.alias("ip"))
        .where("ip IS NOT NULL")
        .distinct()
        .join(spark.table(table).select("ip"), "ip", "left_anti")
    )
    new_rows = addresses.selectExpr(
        "ip",
        *(ddl.column_expression(n, k, f, available, "ip") for n, k, f in ddl.ENRICHMENT_COLUMNS),
        "current_timestamp() AS enriched_at",
    )
    staged = new_rows.localCheckpoint()  # the UDFs run once, whatever reads the rows next
    report.new_addresses = staged.count()
    if report.recomputed:
        # the table is read and rewritten: materialize first, the plan must not read it back
        existing.unionByName(staged).localCheckpoint().write.insertInto(table, overwrite=True)
    else:
        staged.write.insertInto(table)
    if through:
        now[ddl.PROP_FILES_THROUGH] = through
    run_statements(spark, [ddl.set_properties(db, now)])
    report.total = spark.table(table).count()
    _ensure_view(spark, db)
    return report


def _recompute(existing: DataFrame, columns, available: set[str]) -> DataFrame:
    names = {name for name, _, _ in columns}
    keep = [c for c in existing.columns if c not in names and c != "enriched_at"]
    return existing.selectExpr(
        *keep,
        *(ddl.column_expression(n, k, f, available, "ip") for n, k, f in columns),
        "current_timestamp() AS enriched_at",
    ).select(existing.columns)


def _properties(spark: SparkSession, table: str) -> dict[str, str]:
    rows = spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
    return {r["key"]: r["value"] for r in rows}


def _events_to_scan(
    spark: SparkSession, db: str, through: str | None
) -> tuple[DataFrame, str, str | None]:
    """The events of partitions with files checked after ``through`` (all on a first run),
    a description, and the new high-water mark (None when there is nothing new)."""
    events = spark.table(f"{db}.{ct.EVENTS_VIEW}")
    files = spark.table(f"{db}.{ct.FILES_TABLE}").where(
        "status IN ('loaded', 'partial') AND kind = 'cloudtrail'"
    )
    if through:  # microseconds since 1970: no time zone can shift the mark
        files = files.where(f"unix_micros(checked_at) > {int(through)}")
    stats = files.selectExpr("max(unix_micros(checked_at)) AS newest", "count(*) AS files").first()
    if not stats["files"]:
        return events.limit(0), "no new log files since the last enrich", None
    newest = str(stats["newest"])
    if not through:
        return events, f"all events ({stats['files']:,} log files)", newest
    partitions = sorted(
        tuple(r) for r in files.select("account", "region", "dt").distinct().collect()
    )
    if len(partitions) <= PARTITION_FILTER_LIMIT:
        condition = " OR ".join(
            f"(account = {ct.sql_string(a)} AND region = {ct.sql_string(r)} "
            f"AND dt = {ct.sql_string(d)})"
            for a, r, d in partitions
        )
    else:
        days = sorted({d for _, _, d in partitions})
        condition = "dt IN (" + ", ".join(ct.sql_string(d) for d in days) + ")"
    described = f"{len(partitions):,} partitions with {stats['files']:,} new log files"
    return events.where(condition), described, newest


def _ensure_view(spark: SparkSession, db: str) -> None:
    view = ddl.enriched_view(db)
    expected = spark.table(f"{db}.{ct.EVENTS_VIEW}").columns + [
        name for name, _, _ in ddl.ENRICHMENT_COLUMNS
    ]
    current = view_query(spark, db, view.name)
    if current != view.query or spark.table(f"{db}.{view.name}").columns != expected:
        run_statements(spark, [view.statement()])
