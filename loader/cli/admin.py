"""Getting started and running the place: demo, generate-sample, serve, metastore."""

from __future__ import annotations

import argparse

from loader.cli.options import DATABASE, Option, command
from loader.config import Settings
from loader.errors import ConfigError

OUT = Option("out", "folder to write AWSLogs/... into (required)")
EVENTS = Option("events", "events in all")
DAYS = Option("days", "days of history")
ACCOUNTS = Option("accounts", "AWS accounts")
SEED = Option("seed", "random seed")
EVENTS_PER_FILE = Option("events_per_file", "events per log file at most")
END_DATE = Option("end_date", "last day, YYYY-MM-DD (default: 2024-03-31)")
FILE_MINUTES = Option(
    "file_minutes",
    "cut files as CloudTrail delivers them: one per region per N minutes with events, named "
    "with the time it was written (0: files of --events-per-file)",
)
HOST = Option("host", "address to listen on (127.0.0.1: this machine only)", show_default=False)
PORT = Option("port", "port")
POSTGRES = Option(
    "postgres",
    "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (an empty database; without a password in "
    "the URL, PGPASSWORD is used) (required)",
    metavar="URL",
)
CONF_DIR = Option(
    "conf_dir",
    "Spark configuration folder to write (default: $SPARK_CONF_DIR, else ./spark-conf)",
    metavar="DIR",
)
WAREHOUSE = Option(
    "warehouse",
    "where managed tables' data goes, seen alike by every process (default: ./spark-warehouse "
    "made absolute; s3://, hdfs:// as given)",
    metavar="PATH",
)
JDBC_DRIVER = Option(
    "jdbc_driver",
    "PostgreSQL JDBC driver jar (default: Debian's /usr/share/java/postgresql.jar)",
    metavar="JAR",
)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = command(
        commands, "demo", run_demo, enrichment=True,
        help="generate a sample here, create the tables and run the sample queries",
        description="Generate a sample into ./sample, create the tables in the current "
        "directory's metastore and print the result of every query in sql/queries/.",
    )  # fmt: skip
    EVENTS.add(demo, "events to generate")
    DATABASE.add(demo)
    OUT.add(demo, "folder for the sample logs (default: ./sample)")

    sample = command(
        commands, "generate-sample", generate_sample, spark=False,
        help="write realistic CloudTrail logs, with an attack story on the last day",
        description="Write deterministic, realistic CloudTrail log files in the real S3 layout "
        "and file naming. See docs/sample.md for the attack story injected on the last day.",
    )  # fmt: skip
    for option in (OUT, EVENTS, DAYS, ACCOUNTS, SEED, EVENTS_PER_FILE, END_DATE, FILE_MINUTES):
        option.add(sample)

    serve = command(
        commands, "serve", run_serve, enrichment=True,
        help="run the Spark Thrift Server (beeline, JDBC) with the GeoIP/Tor functions",
        description="Start the Spark Thrift Server in this process, single-session, with the "
        "enrichment functions registered, so beeline can call geoip_country(...) and friends. "
        "Stops on Ctrl-C or SIGTERM.",
    )  # fmt: skip
    HOST.add(serve)
    PORT.add(serve)
    DATABASE.add(serve, "database named in the printed JDBC URL")

    meta = command(
        commands, "metastore", metastore,
        help="put the Hive catalog in PostgreSQL so run, serve, spark-sql and pyspark share it",
        description="Create the Hive metastore schema in a PostgreSQL database (once; a rerun "
        "changes nothing) and write the Spark settings that use it into CONF_DIR/"
        "spark-defaults.conf. With SPARK_CONF_DIR=CONF_DIR, every Spark process on this "
        "machine (python -m loader, spark-sql, spark-submit, pyspark) shares the catalog at "
        "the same time, which the default embedded Derby metastore cannot do.",
    )  # fmt: skip
    for option in (POSTGRES, CONF_DIR, WAREHOUSE, JDBC_DRIVER):
        option.add(meta)


def run_demo(settings: Settings) -> int:
    from loader.demo import run_demo as demo

    return demo(settings, out=settings.out or "sample", events=settings.events)


def generate_sample(settings: Settings) -> int:
    from loader.sample.generate import SampleSpec, write_sample

    out = settings.need("out", "generate-sample")
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
        summary = write_sample(out, spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print(summary.render())
    return 0


def run_serve(settings: Settings) -> int:
    from loader.serve import serve

    return serve(settings)


def metastore(settings: Settings) -> int:
    from loader.metastore import setup_shared_metastore

    return setup_shared_metastore(settings, settings.need("postgres", "metastore"))
