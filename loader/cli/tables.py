"""Tables: create-hive-table, create-glue-table, materialize, enrich."""

from __future__ import annotations

import argparse

from loader.cli.options import DATABASE, KIND, SINCE, SOURCE, Option, command
from loader.config import Settings
from loader.errors import ConfigError

DRY_RUN = Option("dry_run", "print the equivalent Athena DDL, change nothing")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    create = command(
        commands, "create-hive-table", create_hive_table,
        help="register CloudTrail logs as persistent tables (security.cloudtrail, ...)",
        description="Create or update the CloudTrail tables and views from a folder or S3 "
        "prefix in the CloudTrail layout. Safe to run again: it adds new accounts, regions and "
        "days, and reports files it could not load (see security.cloudtrail_quarantine).",
    )  # fmt: skip
    SOURCE.add(create, "folder or s3://bucket/prefix at any level of AWSLogs/... (required)")
    DATABASE.add(create, "database to create the tables in")
    KIND.add(create)

    glue = command(
        commands, "create-glue-table", create_glue_table, spark=False,
        help="the same tables in the AWS Glue Data Catalog, for Athena (boto3)",
        description="Create or update, through the Glue API, Athena's CloudTrail table with "
        "partition projection over account, region and day (no partitions to add, ever) and "
        "the cloudtrail view typed as Spark's; or the S3 server access log table. A table that "
        "matches is left alone, one that differs is updated.",
    )  # fmt: skip
    SOURCE.add(glue, "s3://bucket/[prefix/]AWSLogs[/<org-id>] (CloudTrail) or the access log "
               "prefix (required)")  # fmt: skip
    DATABASE.add(glue, "Glue database")
    KIND.add(glue)
    DRY_RUN.add(glue)

    mat = command(
        commands, "materialize", materialize,
        help="convert raw CloudTrail days to a Parquet table, incrementally",
        description="Convert every day (account, region, dt) of the raw table not converted "
        "yet, or whose raw files changed since, into security.cloudtrail_parquet: the "
        "cloudtrail view's columns with raw_json, partitioned by dt, account and region. Query "
        "it, or give it to detect --table, for much faster scans of long histories.",
    )  # fmt: skip
    SINCE.add(mat, "only days from this one on (YYYY-MM-DD)")
    DATABASE.add(mat, "database of the raw tables")

    enrich = command(
        commands, "enrich", enrich_addresses, enrichment=True,
        help="compute GeoIP/Tor columns per source address for spark-sql users",
        description="Fill security.ip_enrichment with country, city, ASN and Tor facts for "
        "every distinct sourceIPAddress (incrementally: only new log files are scanned and "
        "only new addresses looked up) and create the view security.cloudtrail_enriched.",
    )  # fmt: skip
    DATABASE.add(enrich, "database of the CloudTrail tables")


def create_hive_table(settings: Settings) -> int:
    from loader.session import build_session
    from loader.sources.listing import normalize_source
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    source = settings.need("source", "create-hive-table")
    normalize_source(source)  # a typo fails now, not after Spark has started
    spark = build_session(settings, "tsa create-hive-table")
    if settings.kind == "s3-access-logs":
        from loader.tables.create_s3_access import create_s3_access_tables

        print(create_s3_access_tables(spark, source, settings.database).render())
        return 0
    print(create_cloudtrail_tables(spark, source, settings.database).render())
    return 0


def create_glue_table(settings: Settings) -> int:
    from loader.s3util import is_s3
    from loader.tables.glue import apply_tables, athena_ddl, glue_tables

    source = settings.need("source", "create-glue-table")
    if not is_s3(source):
        raise ConfigError(f"create-glue-table --source {source}: expected an s3:// prefix")
    tables = glue_tables(settings.kind, source, settings.database)
    if settings.dry_run:
        print(";\n\n".join(athena_ddl(settings.database, table) for table in tables) + ";")
        return 0
    print(apply_tables(settings.database, tables).render())
    return 0


def materialize(settings: Settings) -> int:
    from loader.session import build_session
    from loader.tables.materialize import materialize as run_materialize

    spark = build_session(settings, "tsa materialize")
    print(run_materialize(spark, settings.database, settings.since).render())
    return 0


def enrich_addresses(settings: Settings) -> int:
    from loader.enrichment import enriched_session
    from loader.tables.enrich import enrich

    spark, enrichment = enriched_session(settings, "tsa enrich")
    print(enrich(spark, settings.database, enrichment).render())
    return 0
