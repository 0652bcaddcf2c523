"""`python -m loader`: the one front door. Imports stay lazy so --help starts no JVM."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loader import __version__
from loader.config import Settings, resolve
from loader.errors import ConfigError, TsaError

if TYPE_CHECKING:
    from loader.coverage.gaps import GapSettings

Handler = Callable[[argparse.Namespace, Settings], int]


def _spark_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Spark")
    group.add_argument("--master", help="Spark master URL (default: Spark's own, local[*])")
    group.add_argument(
        "--conf",
        action="append",
        metavar="KEY=VALUE",
        help="a Spark setting, repeatable (e.g. --conf spark.driver.memory=4g)",
    )


def _enrichment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Enrichment (GeoIP and Tor functions)")
    group.add_argument("--geoip-city-db", metavar="PATH", help="MaxMind City .mmdb, local or s3://")
    group.add_argument("--geoip-country-db", metavar="PATH", help="MaxMind Country .mmdb")
    group.add_argument("--geoip-asn-db", metavar="PATH", help="MaxMind ASN .mmdb")
    group.add_argument(
        "--tor-exit-list",
        metavar="SOURCE",
        help="Tor exit list: file, folder or tarball of snapshots, http(s) URL or s3://",
    )
    group.add_argument(
        "--tor-refresh", metavar="DURATION", help="re-read the Tor list this often (1h; 0: never)"
    )


def _engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Rule engine")
    group.add_argument(
        "--explain",
        action="store_true",
        help="print the plan (which rules share one pass over the events, which run alone and "
        "why, Spark jobs per batch) and stop, without starting Spark",
    )
    group.add_argument(
        "--no-fuse",
        action="store_true",
        help="run every rule alone, exactly as written (the reference path, for comparisons "
        "and bug reports; slower)",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="stop when a rule fails at runtime (default: report it with its file, leave it "
        "out and go on with the other rules)",
    )


def _coverage_options(parser: argparse.ArgumentParser, switch: bool = True) -> None:
    group = parser.add_argument_group("Log delivery gaps (rule log_delivery_gap)")
    if switch:
        group.add_argument(
            "--no-coverage",
            action="store_true",
            help="do not judge log delivery gaps (default: alert on them, kind coverage)",
        )
    group.add_argument(
        "--min-gap",
        default="1h",
        metavar="DURATION",
        help="a silence shorter than this is never a gap (1h)",
    )
    group.add_argument(
        "--gap-factor",
        default=3.0,
        type=float,
        metavar="N",
        help="a gap is longer than N times the series' usual interval (its p99) (3)",
    )


def _gap_settings(args: argparse.Namespace) -> GapSettings:
    from loader.coverage.gaps import GapSettings
    from loader.durations import parse_duration

    if args.gap_factor <= 0:
        raise ConfigError(f"--gap-factor {args.gap_factor}: expected a number above 0")
    return GapSettings(min_gap=parse_duration(args.min_gap, "--min-gap"), factor=args.gap_factor)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", help="TOML settings file, local path or s3://bucket/key"
    )
    parser.add_argument("--debug", action="store_true", default=None, help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loader",
        description="SQL-first security analytics for AWS CloudTrail logs on Apache Spark.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    create = commands.add_parser(
        "create-hive-table",
        help="register CloudTrail logs as persistent tables (security.cloudtrail, ...)",
        description="Create or update the CloudTrail tables and views from a folder or S3 "
        "prefix in the CloudTrail layout. Safe to run again: it adds new accounts, regions and "
        "days, and reports files it could not load (see security.cloudtrail_quarantine).",
    )
    create.add_argument(
        "--source", help="folder or s3://bucket/prefix at any level of AWSLogs/... (required)"
    )
    create.add_argument("--database", help="database to create the tables in (default: security)")
    create.add_argument(
        "--kind",
        choices=["cloudtrail", "s3-access-logs"],
        default="cloudtrail",
        help="what the logs are: CloudTrail (default) or S3 server access logs "
        "(security.s3_access_logs, flat or date-partitioned key layout)",
    )
    _common_options(create)
    _spark_options(create)
    create.set_defaults(handler=_create_hive_table)

    glue = commands.add_parser(
        "create-glue-table",
        help="the same tables in the AWS Glue Data Catalog, for Athena (boto3)",
        description="Create or update, through the Glue API, Athena's CloudTrail table with "
        "partition projection over account, region and day (no partitions to add, ever) and "
        "the cloudtrail view typed as Spark's; or the S3 server access log table. A table that "
        "matches is left alone, one that differs is updated.",
    )
    glue.add_argument(
        "--source", required=True,
        help="s3://bucket/[prefix/]AWSLogs[/<org-id>] (CloudTrail) or the access log prefix",
    )  # fmt: skip
    glue.add_argument("--database", help="Glue database (default: security)")
    glue.add_argument("--kind", choices=["cloudtrail", "s3-access-logs"], default="cloudtrail")
    glue.add_argument(
        "--dry-run", action="store_true", help="print the equivalent Athena DDL, change nothing"
    )
    _common_options(glue)
    glue.set_defaults(handler=_create_glue_table)

    sample = commands.add_parser(
        "generate-sample",
        help="write realistic CloudTrail logs, with an attack story on the last day",
        description="Write deterministic, realistic CloudTrail log files in the real S3 layout "
        "and file naming. See the README for the attack story injected on the last day.",
    )
    sample.add_argument("--out", help="folder to write AWSLogs/... into (required)")
    sample.add_argument("--events", type=int, help="events in all (20000)")
    sample.add_argument("--days", type=int, help="days of history (7)")
    sample.add_argument("--accounts", type=int, help="AWS accounts (2)")
    sample.add_argument("--seed", type=int, help="random seed (7)")
    sample.add_argument("--events-per-file", type=int, help="events per log file at most (2500)")
    sample.add_argument("--end-date", help="last day, YYYY-MM-DD (default: 2024-03-31)")
    sample.add_argument(
        "--file-minutes",
        type=int,
        help="cut files as CloudTrail delivers them: one per region per N minutes with events, "
        "named with the time it was written (default 0: files of --events-per-file)",
    )
    _common_options(sample)
    sample.set_defaults(handler=_generate_sample)

    demo = commands.add_parser(
        "demo",
        help="generate a sample here, create the tables and run the sample queries",
        description="Generate a sample into ./sample, create the tables in the current "
        "directory's metastore and print the result of every query in sql/queries/.",
    )
    demo.add_argument("--events", type=int, help="events to generate (20000)")
    demo.add_argument("--database", help="database (default: security)")
    demo.add_argument("--out", help="folder for the sample logs (./sample)")
    _enrichment_options(demo)
    _common_options(demo)
    _spark_options(demo)
    demo.set_defaults(handler=_demo)

    enrich = commands.add_parser(
        "enrich",
        help="compute GeoIP/Tor columns per source address for spark-sql users",
        description="Fill security.ip_enrichment with country, city, ASN and Tor facts for "
        "every distinct sourceIPAddress (incrementally: only new log files are scanned and "
        "only new addresses looked up) and create the view security.cloudtrail_enriched.",
    )
    enrich.add_argument("--database", help="database of the CloudTrail tables (security)")
    _enrichment_options(enrich)
    _common_options(enrich)
    _spark_options(enrich)
    enrich.set_defaults(handler=_enrich)

    serve = commands.add_parser(
        "serve",
        help="run the Spark Thrift Server (beeline, JDBC) with the GeoIP/Tor functions",
        description="Start the Spark Thrift Server in this process, single-session, with the "
        "enrichment functions registered, so beeline can call geoip_country(...) and friends. "
        "Stops on Ctrl-C or SIGTERM.",
    )
    serve.add_argument("--host", help="address to listen on (127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, help="port (10000)")
    serve.add_argument("--database", help="database named in the printed JDBC URL (security)")
    _enrichment_options(serve)
    _common_options(serve)
    _spark_options(serve)
    serve.set_defaults(handler=_serve)

    validate = commands.add_parser(
        "validate",
        help="check rule files (no JVM): header keys, SQL, columns, functions",
        description="Check every rule under PATHS (files or folders of .sql files; default: "
        "the bundled sql/alerts and sql/profiles) and report every problem as "
        "path:line:col: message. Exits non-zero when there is any.",
    )
    validate.add_argument("paths", nargs="*", metavar="PATH", help="rule files or folders")
    _common_options(validate)
    validate.set_defaults(handler=_validate)

    detect = commands.add_parser(
        "detect",
        help="run every rule over history in batch (backtest) into security.alerts",
        description="Evaluate the rules over the events of a table or a folder of logs, in "
        "time order, as a live run would have; append new alerts to security.alerts and print "
        "a summary per rule. Rules are validated first.",
    )
    where = detect.add_mutually_exclusive_group()
    where.add_argument("--table", help="events table or view (default: DATABASE.cloudtrail)")
    where.add_argument(
        "--source", help="a folder or s3:// prefix of CloudTrail logs, read directly"
    )
    detect.add_argument("--since", help="first event time, e.g. 2024-03-01 or 2024-03-01T12:00:00")
    detect.add_argument("--until", help="end (exclusive) of the event times")
    detect.add_argument(
        "--rules", nargs="+", metavar="DIR", help="rule folders or files (default: bundled)"
    )
    detect.add_argument("--output", metavar="FILE", help="also write the alerts as JSON lines")
    detect.add_argument("--database", help="database of security.alerts (security)")
    _engine_options(detect)
    _coverage_options(detect)
    _enrichment_options(detect)
    _common_options(detect)
    _spark_options(detect)
    detect.set_defaults(handler=_detect)

    cover = commands.add_parser(
        "coverage",
        help="log delivery per account and region, its gaps and trail stops (exit 3: gaps)",
        description="From the log files create-hive-table and run recorded (DATABASE."
        "log_deliveries): each account/region with its span, files, events and median "
        "delivery delay; every gap in delivery with its start, end and reason; and the trail "
        "stops (StopLogging, DeleteTrail) and changes the events report. Exit code 0, or 3 "
        "when there is a gap or a stop (for cron).",
    )
    cover.add_argument("--since", help="only deliveries from this time on, e.g. 2024-03-01")
    cover.add_argument("--until", help="only deliveries before this time")
    cover.add_argument(
        "--now",
        help="judge open gaps at this time: 'now' for the clock (then a source that stopped "
        "delivering altogether is a gap too), or a time (default: the newest delivery seen)",
    )
    cover.add_argument("--table", help="events read for trail stops (default: DATABASE.cloudtrail)")
    cover.add_argument("--database", help="database of the tables (security)")
    _coverage_options(cover, switch=False)
    _common_options(cover)
    _spark_options(cover)
    cover.set_defaults(handler=_coverage)

    report = commands.add_parser(
        "report",
        help="one self-contained HTML file of the alerts: plots, entities, events, deliveries",
        description="Write the alerts of DATABASE.alerts as one HTML file that opens offline: "
        "alerts over time by severity and per rule, then for each entity with alerts its "
        "events per hour around them (errors marked), the profile it departed from, the raw "
        "event of each alert, and every alert's delivery status.",
    )
    report.add_argument("--out", default="alerts.html", help="the HTML file (alerts.html)")
    report.add_argument("--since", help="first alert event time, e.g. 2024-03-01")
    report.add_argument("--until", help="end (exclusive) of the alert event times")
    report.add_argument("--table", help="events for the timelines (default: DATABASE.cloudtrail)")
    report.add_argument(
        "--entities", type=int, default=20, help="entities shown, most alerts first (20)"
    )
    report.add_argument("--database", help="database of the tables (security)")
    _enrichment_options(report)
    _common_options(report)
    _spark_options(report)
    report.set_defaults(handler=_report)

    run = commands.add_parser(
        "run",
        help="the rules over history then new logs as they land (Structured Streaming)",
        description="Replay the CloudTrail logs under --source in time order while profiles "
        "learn, then keep watching for new files; alerts go to security.alerts. The "
        "checkpoint makes a restarted runner continue where it stopped. Rules are validated "
        "first.",
    )
    run.add_argument(
        "--source",
        help="a folder or s3:// prefix of CloudTrail logs (with --sqs-queue-url: the history "
        "replayed first, read through boto3)",
    )
    run.add_argument(
        "--sqs-queue-url",
        metavar="URL",
        help="follow an SQS queue of CloudTrail SNS or S3 event notifications (raw, in SNS or "
        "EventBridge form) and read the objects they name through boto3",
    )
    run.add_argument(
        "--sqs-inbox",
        metavar="DIR",
        help="local folder where the SQS source keeps what it took in until committed "
        "(default: CHECKPOINT/sqs)",
    )
    run.add_argument(
        "--sqs-visibility-timeout",
        default="15m",
        help="how long a received message stays hidden while its batch runs (15m)",
    )
    run.add_argument(
        "--events-queue-url",
        metavar="URL",
        help="also follow an SQS queue an EventBridge rule fills with CloudTrail events (raw or "
        "in SNS form): alerts within seconds; each event counts once, whether it comes from the "
        "queue, from a log file, or both",
    )
    run.add_argument(
        "--events-inbox",
        metavar="DIR",
        help="local folder where the events source keeps what it took in until committed "
        "(default: CHECKPOINT/events)",
    )
    run.add_argument(
        "--dedup-window",
        default="24h",
        help="with --events-queue-url: how long (in event time) an event is remembered so its "
        "second arrival is dropped; longer than the trail's file delivery delay (24h)",
    )
    run.add_argument(
        "--checkpoint", default="tsa-checkpoint", help="checkpoint folder (default: tsa-checkpoint)"
    )
    run.add_argument("--trigger", default="30s", help="how often to look for new files (30s)")
    run.add_argument("--once", action="store_true", help="process what is there now, then stop")
    run.add_argument(
        "--max-files",
        type=int,
        help="at most this many new files per batch (default: all; the first batch then holds "
        "the whole history, evaluated in time order)",
    )
    run.add_argument(
        "--rules", nargs="+", metavar="DIR", help="rule folders or files (default: bundled)"
    )
    run.add_argument(
        "--history-table",
        metavar="TABLE",
        help="a new checkpoint replays history from this materialized Parquet table (e.g. "
        "security.cloudtrail_parquet) for the days whose raw files are unchanged since "
        "materialize converted them; every other file is read raw",
    )
    run.add_argument("--database", help="database of security.alerts (security)")
    _engine_options(run)
    _coverage_options(run)
    _enrichment_options(run)
    _common_options(run)
    _spark_options(run)
    run.set_defaults(handler=_run)

    mat = commands.add_parser(
        "materialize",
        help="convert raw CloudTrail days to a Parquet table, incrementally",
        description="Convert every day (account, region, dt) of the raw table not converted yet, "
        "or whose raw files changed since, into security.cloudtrail_parquet: the cloudtrail "
        "view's columns with raw_json, partitioned by dt, account and region. Query it, or give "
        "it to detect --table, for much faster scans of long histories.",
    )
    mat.add_argument("--since", metavar="YYYY-MM-DD", help="only days from this one on")
    mat.add_argument("--database", help="database of the raw tables (security)")
    _common_options(mat)
    _spark_options(mat)
    mat.set_defaults(handler=_materialize)

    meta = commands.add_parser(
        "metastore",
        help="put the Hive catalog in PostgreSQL so run, serve, spark-sql and pyspark share it",
        description="Create the Hive metastore schema in a PostgreSQL database (once; a rerun "
        "changes nothing) and write the Spark settings that use it into CONF_DIR/"
        "spark-defaults.conf. With SPARK_CONF_DIR=CONF_DIR, every Spark process on this "
        "machine (python -m loader, spark-sql, spark-submit, pyspark) shares the catalog at "
        "the same time, which the default embedded Derby metastore cannot do.",
    )
    meta.add_argument(
        "--postgres",
        required=True,
        metavar="URL",
        help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE (an empty database; without a "
        "password in the URL, PGPASSWORD is used)",
    )
    meta.add_argument(
        "--conf-dir",
        metavar="DIR",
        help="Spark configuration folder to write (default: $SPARK_CONF_DIR, else ./spark-conf)",
    )
    meta.add_argument(
        "--warehouse",
        metavar="PATH",
        help="where managed tables' data goes, seen alike by every process (default: "
        "./spark-warehouse made absolute; s3://, hdfs:// as given)",
    )
    meta.add_argument(
        "--jdbc-driver",
        metavar="JAR",
        default=None,
        help="PostgreSQL JDBC driver jar (default: Debian's /usr/share/java/postgresql.jar)",
    )
    _common_options(meta)
    _spark_options(meta)
    meta.set_defaults(handler=_metastore)

    export = commands.add_parser(
        "export",
        help="the rules as Athena (Trino) queries to schedule, transpiled with sqlglot",
        description="Write every rule as an Athena query: Spark-only SQL rewritten (JSON "
        "functions, exists, UNNEST), GeoIP/Tor functions joined against the exported "
        "ip_enrichment table, profiles as 'first seen' queries over their history window. A "
        "rule that cannot be expressed is reported as not portable and not written.",
    )
    export.add_argument("--dialect", choices=["athena"], default="athena")
    export.add_argument(
        "--rules", nargs="+", metavar="DIR", help="rule folders or files (default: bundled)"
    )
    export.add_argument("--out", metavar="DIR", help="write NAME.sql per rule here")
    export.add_argument("--database", help="Glue database of the tables (security)")
    export.add_argument("--every", default="1h", help="how often the queries will run (1h)")
    _common_options(export)
    export.set_defaults(handler=_export)

    discover = commands.add_parser(
        "discover",
        help="find where the CloudTrail trails of every enabled region write (boto3)",
        description="Ask every enabled region (or --regions) for its trails, organization "
        "trails included, and print each S3 bucket/prefix once however many trails or regions "
        "write there. Give a location to create-hive-table, or to sync first.",
    )
    discover.add_argument("--regions", nargs="+", help="only these regions")
    discover.add_argument(
        "--create",
        action="store_true",
        help="create/update the CloudTrail tables (as create-hive-table) over every location",
    )
    discover.add_argument(
        "--sync-to",
        metavar="DIR",
        help="first copy every location's log objects into DIR (as sync); with --create, the "
        "tables are made over the copies (for a Spark without an S3 filesystem)",
    )
    discover.add_argument("--database", help="database for --create (security)")
    _common_options(discover)
    _spark_options(discover)
    discover.set_defaults(handler=_discover)

    sync = commands.add_parser(
        "sync",
        help="copy new CloudTrail log objects from S3 to a local folder (incremental)",
        description="Mirror the CloudTrail log objects (not digests) under an s3:// prefix to "
        "DEST/<key>, keeping the layout; objects already copied are skipped, an interrupted "
        "sync is resumed by running it again. For a local Spark without an S3 filesystem.",
    )
    sync.add_argument("--source", required=True, help="s3://bucket/prefix to copy from")
    sync.add_argument("--dest", required=True, help="local folder to copy into")
    _common_options(sync)
    sync.set_defaults(handler=_sync)

    deliver = commands.add_parser(
        "deliver",
        help="send the alerts still pending in the outbox to the configured sinks",
        description="Deliver what security.alerts holds and security.alert_deliveries does not "
        "record as final for a sink (sinks, dedup and allowlists from the config file's "
        "[[sinks]], [delivery] and [allowlist]). `run` and `detect` deliver on their own; this "
        "flushes what a stopped runner or an unreachable sink left behind.",
    )
    deliver.add_argument(
        "--wait", default="0s", help="keep retrying for up to this long while alerts are pending"
    )
    deliver.add_argument("--database", help="database of security.alerts (security)")
    _enrichment_options(deliver)
    _common_options(deliver)
    _spark_options(deliver)
    deliver.set_defaults(handler=_deliver)

    test_rules = commands.add_parser(
        "test-rules",
        help="run the cases in each rule's sibling NAME.test.json",
        description="Validate the rules under PATHS (default: bundled), then run every case of "
        "their sibling NAME.test.json files. Without GeoIP/Tor flags the sample's databases "
        "and Tor list are used, so the tests are self-contained.",
    )
    test_rules.add_argument("paths", nargs="*", metavar="PATH", help="rule files or folders")
    test_rules.add_argument(
        "--no-fuse", action="store_true", help="run every rule alone, exactly as written"
    )
    _enrichment_options(test_rules)
    _common_options(test_rules)
    _spark_options(test_rules)
    test_rules.set_defaults(handler=_test_rules)

    sigma = commands.add_parser(
        "import-sigma",
        help="turn Sigma rules (AWS CloudTrail) into rule files, with pySigma",
        description="Convert every Sigma rule in SRC (YAML files or folders; a SigmaHQ "
        "checkout works) whose logsource is product aws / service cloudtrail into a rule file "
        "DIR/sigma_<file stem>.sql, validate what was written, and report every rule as "
        "converted, skipped or failed with the reason. Needs the [sigma] extra.",
    )
    sigma.add_argument("sources", nargs="+", metavar="SRC", help="Sigma YAML files or folders")
    sigma.add_argument("--out", required=True, metavar="DIR", help="folder for the rule files")
    sigma.add_argument("--force", action="store_true", help="replace rule files already in DIR")
    sigma.add_argument(
        "--source-url",
        metavar="URL",
        help="base URL for each rule's `source` (its path under SRC is appended), e.g. "
        "https://github.com/SigmaHQ/sigma/blob/master/rules/cloud/aws; default: the path read",
    )
    sigma.add_argument(
        "--license", help="licence of rules that name none (default: DRL-1.1, SigmaHQ's)"
    )
    sigma.add_argument(
        "--dedup", metavar="DURATION", help="a dedup window for every rule (Sigma has none)"
    )
    _common_options(sigma)
    sigma.set_defaults(handler=_import_sigma)
    return parser


def _import_sigma(args: argparse.Namespace, settings: Settings) -> int:
    from loader.sigma.importer import import_sigma

    report = import_sigma(
        args.sources, args.out, args.force, args.source_url, args.license, args.dedup
    )
    print(report.render())
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return 1 if report.problems else 0


def _create_hive_table(args: argparse.Namespace, settings: Settings) -> int:
    from loader.session import build_session
    from loader.sources.listing import normalize_source
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    if not settings.source:
        raise ConfigError("create-hive-table needs --source (or 'source' in the config file)")
    normalize_source(settings.source)  # a typo fails now, not after Spark has started
    spark = build_session(settings, "tsa create-hive-table")
    if args.kind == "s3-access-logs":
        from loader.tables.create_s3_access import create_s3_access_tables

        print(create_s3_access_tables(spark, settings.source, settings.database).render())
        return 0
    report = create_cloudtrail_tables(spark, settings.source, settings.database)
    print(report.render())
    return 0


def _generate_sample(args: argparse.Namespace, settings: Settings) -> int:
    from loader.sample.generate import SampleSpec, write_sample

    if not settings.out:
        raise ConfigError("generate-sample needs --out (or 'out' in the config file)")
    spec = SampleSpec(
        events=settings.events,
        days=settings.days,
        accounts=settings.accounts,
        seed=settings.seed,
        events_per_file=settings.events_per_file,
        end_date=settings.end_date,
        file_minutes=settings.file_minutes,
    )
    try:
        summary = write_sample(settings.out, spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print(summary.render())
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from loader.demo import run_demo

    return run_demo(settings, out=settings.out or "sample", events=settings.events)


def _enrich(args: argparse.Namespace, settings: Settings) -> int:
    from loader.enrichment import enriched_session
    from loader.tables.enrich import enrich

    spark, enrichment = enriched_session(settings, "tsa enrich")
    print(enrich(spark, settings.database, enrichment).render())
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from loader.serve import serve

    return serve(settings)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from loader.rules.validate import BUNDLED, load_rules

    paths = args.paths or [str(p) for p in BUNDLED]
    rules, problems = load_rules(paths)
    for problem in sorted(problems):
        print(problem)
    verdict = f"{len(problems)} problem(s)" if problems else "no problems"
    print(f"{len(rules)} rule file(s) checked: {verdict}", file=sys.stderr)
    return 1 if problems else 0


def _detect(args: argparse.Namespace, settings: Settings) -> int:
    from loader.alerts.outbox import deliver_until_done
    from loader.alerts.settings import build_deliverer
    from loader.enrichment import enriched_session
    from loader.rules.detect import detect, events_relation, source_events
    from loader.rules.validate import load_valid_rules

    rules = load_valid_rules(args.rules)
    if args.explain:
        return _explain(rules, args)
    spark, enrichment = enriched_session(settings, "tsa detect")
    if args.source:
        events = source_events(spark, args.source)
        events.createOrReplaceTempView("__detect_events")
        events = events_relation(spark, "__detect_events", args.since, args.until)
    else:
        table = args.table or f"{settings.database}.cloudtrail"
        events = events_relation(spark, table, args.since, args.until)
    deliverer = build_deliverer(settings)  # config problems before the long part
    report = detect(
        spark, rules, events, settings.database, args.output,
        fuse=not args.no_fuse, enrichment=enrichment, strict=args.strict,
        coverage=_detect_coverage(spark, args, settings),
    )  # fmt: skip
    print(report.render())
    if deliverer is not None:
        deliver_until_done(spark, settings.database, deliverer, wait=0.0)
    return 1 if report.failed else 0


def _coverage(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from loader.coverage.report import coverage
    from loader.session import build_session

    gaps = _gap_settings(args)
    now = None
    if args.now == "now":
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    elif args.now:
        try:
            now = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"--now {args.now!r}: expected 'now' or a time such as "
                              "2024-03-31T12:00") from exc  # fmt: skip
        if now.tzinfo is not None:
            now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    spark = build_session(settings, "tsa coverage")
    report = coverage(spark, settings.database, gaps, args.since, args.until, now, args.table)
    print(report.render())
    return report.exit_code


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from loader.report.data import read_report_data
    from loader.report.render import write_report

    if args.entities < 0:
        raise ConfigError(f"--entities {args.entities}: expected 0 or more")
    from loader.enrichment import enriched_session

    spark, enrichment = enriched_session(settings, "tsa report")
    data = read_report_data(
        spark, settings.database, args.since, args.until, args.table, args.entities, enrichment
    )
    try:
        write_report(data, args.out)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot write: {exc.strerror}") from exc
    print(f"{len(data.alerts):,} alert(s), {len(data.entities)} entities: wrote {args.out}")
    return 0


def _detect_coverage(spark, args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    """The gap alerts `detect` adds, as a function of the batch id; None when off or when
    there is nothing to judge (said in one line)."""
    from loader.coverage.alerts import alerted_before, gap_alerts
    from loader.coverage.deliveries import (
        DELIVERIES_TABLE,
        coverage_where,
        deliveries_table,
        judge_relation,
        listing_relation,
        table_exists,
    )

    if args.no_coverage:
        return None
    gaps = _gap_settings(args)
    if args.source:
        relation = listing_relation(spark, args.source)
    elif table_exists(spark, settings.database, DELIVERIES_TABLE):
        relation = deliveries_table(settings.database)
    else:
        print(f"coverage: no {settings.database}.{DELIVERIES_TABLE} (create-hive-table records "
              "the files it loads); delivery gaps not judged")  # fmt: skip
        return None
    where = coverage_where(args.since, args.until)

    def alerts(batch_id: int):  # type: ignore[no-untyped-def]
        judgement = judge_relation(spark, relation, gaps, None, where)
        earlier = alerted_before(spark, settings.database)
        return gap_alerts(spark, judgement.gaps, gaps, batch_id, earlier)

    return alerts


def _explain(rules: list, args: argparse.Namespace) -> int:  # type: ignore[type-arg]
    from loader.engine.plan import plan_rules

    print(plan_rules(rules, fuse=not args.no_fuse).explain())
    return 0


def _create_glue_table(args: argparse.Namespace, settings: Settings) -> int:
    from loader.s3util import is_s3
    from loader.tables.glue import apply_tables, athena_ddl, glue_tables

    if not is_s3(args.source):
        raise ConfigError(f"create-glue-table --source {args.source}: expected an s3:// prefix")
    tables = glue_tables(args.kind, args.source, settings.database)
    if args.dry_run:
        print(";\n\n".join(athena_ddl(settings.database, table) for table in tables) + ";")
        return 0
    print(apply_tables(settings.database, tables).render())
    return 0


def _materialize(args: argparse.Namespace, settings: Settings) -> int:
    from loader.session import build_session
    from loader.tables.materialize import materialize

    spark = build_session(settings, "tsa materialize")
    print(materialize(spark, settings.database, args.since).render())
    return 0


def _metastore(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from loader import metastore
    from loader.session import build_session

    pg = metastore.parse_postgres_url(args.postgres)
    driver = metastore.check_driver(args.jdbc_driver or metastore.DEBIAN_JDBC_DRIVER)
    warehouse = (
        metastore.warehouse_uri(args.warehouse) if args.warehouse else metastore.default_warehouse()
    )
    conf_dir = Path(args.conf_dir or os.environ.get("SPARK_CONF_DIR") or "spark-conf").resolve()
    metastore.check_reachable(pg)
    settings.conf = {**settings.conf, **metastore.schema_creation_conf(pg, warehouse, driver)}
    spark = build_session(settings, "tsa metastore")
    print(metastore.create_schema(spark, pg).render(pg))
    spark.stop()
    path = metastore.write_spark_defaults(conf_dir, metastore.shared_conf(pg, warehouse, driver))
    print(f"wrote {path} (mode 600: it holds the password)")
    print(f"warehouse: {warehouse}")
    print(f"every Spark process started with SPARK_CONF_DIR={conf_dir} shares this catalog:")
    print(f"  export SPARK_CONF_DIR={conf_dir}")
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from loader.durations import parse_duration
    from loader.rules.export import export_rules
    from loader.rules.validate import load_valid_rules

    rules = load_valid_rules(args.rules)
    every = int(parse_duration(args.every, "--every"))
    report = export_rules(rules, settings.database, args.out, every)
    if not args.out:
        for rule in report.rules:
            if rule.sql is not None:
                print(rule.sql)
    print(report.render(), file=sys.stderr if not args.out else sys.stdout)
    return 0  # what is not portable is listed; the rest is ready


def _discover(args: argparse.Namespace, settings: Settings) -> int:
    from loader.s3util import split_s3
    from loader.sources.discover import discover

    found = discover(args.regions)
    print(found.render())
    if not found.locations:
        return 1
    sources = [location.url for location in found.locations]
    if args.sync_to:
        from loader.sources.s3sync import sync

        copies = []
        for url in sources:
            report = sync(url, args.sync_to)
            print(report.render())
            if report.failed:
                return 1
            _, prefix = split_s3(url)
            copies.append(os.path.join(args.sync_to, prefix))
        sources = copies
    if not args.create:
        return 0
    from loader.session import build_session
    from loader.sources.listing import list_files
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    spark = build_session(settings, "tsa discover --create")
    for source in sources:
        if args.sync_to and not os.path.isdir(source):
            print(f"{source}: no log objects copied, no tables to make")
            continue
        if not args.sync_to and next(iter(list_files(source)), None) is None:
            print(f"{source}: no objects yet, no tables to make")
            continue
        print(create_cloudtrail_tables(spark, source, settings.database).render())
    return 0


def _sync(args: argparse.Namespace, settings: Settings) -> int:
    from loader.s3util import is_s3
    from loader.sources.s3sync import sync

    if not is_s3(settings.source or ""):
        raise ConfigError(f"sync --source {settings.source}: expected s3://bucket/prefix")
    report = sync(settings.source, args.dest)
    print(report.render())
    return 1 if report.failed else 0


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    from loader.alerts.outbox import deliver_until_done
    from loader.alerts.settings import build_deliverer
    from loader.durations import parse_duration
    from loader.session import build_session
    from loader.stream.apply import create_run_tables

    deliverer = build_deliverer(settings)
    if deliverer is None:
        raise ConfigError("deliver: no sinks configured; add [[sinks]] tables to --config")
    wait = parse_duration(args.wait, "--wait")
    spark = build_session(settings, "tsa deliver")
    database = create_run_tables(spark, settings.database)
    for sink in deliverer.sinks:
        print(f"sink {sink.describe()}")
    pending = deliver_until_done(spark, database, deliverer, wait)
    return 1 if pending else 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    from functools import partial

    from loader.alerts.settings import build_deliverer
    from loader.coverage.live import LiveCoverage
    from loader.durations import parse_duration
    from loader.engine.plan import plan_rules
    from loader.enrichment import enriched_session
    from loader.rules.validate import load_valid_rules
    from loader.stream.events_source import commit_finished_events, stream_queue_events
    from loader.stream.history import history
    from loader.stream.runner import start
    from loader.stream.source import stream_events
    from loader.stream.sqs_source import commit_finished, stream_sqs_events

    rules = load_valid_rules(args.rules)
    if args.explain:
        return _explain(rules, args)
    trigger = parse_duration(args.trigger)
    coverage = None
    if not args.no_coverage:
        coverage = LiveCoverage(settings.database, _gap_settings(args), args.max_files)
    deliverer = build_deliverer(settings)
    interval = parse_duration(str(settings.delivery.get("interval", "2s")), "delivery.interval")
    if not (args.source or args.sqs_queue_url or args.events_queue_url):
        raise ConfigError("run needs --source, --sqs-queue-url, --events-queue-url or several")
    if settings.history_table and (args.sqs_queue_url or not args.source):
        raise ConfigError("--history-table works with --source (a folder or s3:// prefix of logs)")
    visibility = int(parse_duration(args.sqs_visibility_timeout, "--sqs-visibility-timeout"))
    window = parse_duration(args.dedup_window, "--dedup-window") if args.events_queue_url else None
    spark, enrichment = enriched_session(settings, "tsa run")
    finished, replay, events = [], None, None
    if args.sqs_queue_url:
        inbox = _inbox(args, args.sqs_inbox, "sqs")
        events = stream_sqs_events(
            spark, args.sqs_queue_url, inbox, args.source, args.max_files, visibility
        )
        finished.append(partial(commit_finished, inbox=inbox, queue_url=args.sqs_queue_url))
    elif args.source:
        if settings.history_table:
            replay = history(spark, settings.history_table, args.source, args.checkpoint)
            print(f"history: {len(replay.days)} day(s) from {replay.table}", flush=True)
        raw = replay.raw_filter() if replay else None
        events = stream_events(spark, args.source, args.max_files, raw)
    if args.events_queue_url:  # the fast path beside the files, the complete record
        inbox = _inbox(args, args.events_inbox, "events")
        queued = stream_queue_events(spark, args.events_queue_url, inbox, visibility)
        events = queued if events is None else events.unionByName(queued)
        finished.append(partial(commit_finished_events, inbox=inbox,
                                queue_url=args.events_queue_url))  # fmt: skip

    def observed(query: object) -> None:
        for commit in finished:
            commit(query)

    runner = start(
        spark, events, plan_rules(rules, fuse=not args.no_fuse), settings.database,
        args.checkpoint, trigger, args.once, report=lambda line: print(line, flush=True),
        strict=args.strict, deliverer=deliverer, delivery_interval=interval, observed=observed,
        enrichment=enrichment, history=replay, coverage=coverage, dedup_window=window,
    )  # fmt: skip

    def stop(signum: int, _frame: object) -> None:
        print(f"stopping on {signal.Signals(signum).name}; the checkpoint keeps the place")
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return runner.wait()


def _inbox(args: argparse.Namespace, given: str | None, name: str) -> str:
    """An SQS source's inbox: a local folder (the driver's Python writes it)."""
    from urllib.parse import urlparse

    if given:
        return given
    parsed = urlparse(args.checkpoint)
    if parsed.scheme == "file":
        return os.path.join(parsed.path, name)
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise ConfigError(
            f"--checkpoint {args.checkpoint} is not a local folder: give --{name}-inbox a local "
            f"folder on the driver for the {name} source's inbox"
        )
    return os.path.join(args.checkpoint, name)


def _test_rules(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from loader.enrichment import enriched_session, with_sample_sources
    from loader.rules.errors import RuleError
    from loader.rules.ruletests import run_rule_tests
    from loader.rules.validate import load_valid_rules
    from loader.sample.enrichment_data import write_enrichment_data

    rules = load_valid_rules(args.paths)
    with tempfile.TemporaryDirectory(prefix="tsa-rule-tests-") as sample:
        write_enrichment_data(sample)
        with_sample_sources(settings, sample)
        spark, enrichment = enriched_session(settings, "tsa test-rules")
        report, problems = run_rule_tests(
            spark, rules, fuse=not args.no_fuse, enrichment=enrichment
        )
    if problems:
        raise RuleError(problems)
    print(report.render())
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("handler", "command")}
    debug = bool(args.debug)
    try:
        settings = resolve(args.config, flags)
        debug = settings.debug
        return args.handler(args, settings)
    except TsaError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
