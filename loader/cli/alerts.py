"""What was found and whether it was seen: deliver, report, coverage."""

from __future__ import annotations

import argparse

from loader.cli.options import DATABASE, SINCE, TABLE, UNTIL, Option, command, coverage_options
from loader.config import Settings
from loader.errors import ConfigError

WAIT = Option("wait", "keep retrying for up to this long while alerts are pending")
REPORT_OUT = Option("report_out", "the HTML file", flag="--out")
ENTITIES = Option("entities", "entities shown, most alerts first")
NOW = Option(
    "now",
    "judge open gaps at this time: 'now' for the clock (then a source that stopped delivering "
    "altogether is a gap too), or a time (default: the newest delivery seen)",
)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    deliver = command(
        commands, "deliver", deliver_pending, enrichment=True,
        help="send the alerts still pending in the outbox to the configured sinks",
        description="Deliver what security.alerts holds and security.alert_deliveries does not "
        "record as final for a sink (sinks, dedup and allowlists from the config file's "
        "[[sinks]], [delivery] and [allowlist]). `run` and `detect` deliver on their own; this "
        "flushes what a stopped runner or an unreachable sink left behind.",
    )  # fmt: skip
    WAIT.add(deliver)
    DATABASE.add(deliver, "database of security.alerts")

    report = command(
        commands, "report", write_alert_report, enrichment=True,
        help="one self-contained HTML file of the alerts: plots, entities, events, deliveries",
        description="Write the alerts of DATABASE.alerts as one HTML file that opens offline: "
        "alerts over time by severity and per rule, then for each entity with alerts its "
        "events per hour around them (errors marked), the profile it departed from, the raw "
        "event of each alert, and every alert's delivery status.",
    )  # fmt: skip
    REPORT_OUT.add(report)
    SINCE.add(report, "first alert event time, e.g. 2024-03-01")
    UNTIL.add(report, "end (exclusive) of the alert event times")
    TABLE.add(report, "events for the timelines (default: DATABASE.cloudtrail)")
    ENTITIES.add(report)
    DATABASE.add(report)

    cover = command(
        commands, "coverage", coverage,
        help="log delivery per account and region, its gaps and trail stops (exit 3: gaps)",
        description="From the log files create-hive-table and run recorded (DATABASE."
        "log_deliveries): each account/region with its span, files, events and median "
        "delivery delay; every gap in delivery with its start, end and reason; and the trail "
        "stops (StopLogging, DeleteTrail) and changes the events report. Exit code 0, or 3 "
        "when there is a gap or a stop (for cron).",
    )  # fmt: skip
    SINCE.add(cover, "only deliveries from this time on, e.g. 2024-03-01")
    UNTIL.add(cover, "only deliveries before this time")
    NOW.add(cover)
    TABLE.add(cover, "events read for trail stops (default: DATABASE.cloudtrail)")
    DATABASE.add(cover)
    coverage_options(cover, switch=False)


def deliver_pending(settings: Settings) -> int:
    from loader.alerts.outbox import deliver_until_done
    from loader.alerts.settings import build_deliverer
    from loader.alerts.tables import create_alert_tables
    from loader.durations import parse_duration
    from loader.session import build_session

    deliverer = build_deliverer(settings)
    if deliverer is None:
        raise ConfigError("deliver: no sinks configured; add [[sinks]] tables to --config")
    wait = parse_duration(settings.wait, "--wait")
    spark = build_session(settings, "tsa deliver")
    database = create_alert_tables(spark, settings.database)
    for sink in deliverer.sinks:
        print(f"sink {sink.describe()}")
    pending = deliver_until_done(spark, database, deliverer, wait)
    return 1 if pending else 0


def write_alert_report(settings: Settings) -> int:
    from loader.enrichment import enriched_session
    from loader.report.data import read_report_data
    from loader.report.render import write_report

    if settings.entities < 0:
        raise ConfigError(f"--entities {settings.entities}: expected 0 or more")
    spark, enrichment = enriched_session(settings, "tsa report")
    data = read_report_data(
        spark, settings.database, settings.since, settings.until, settings.table,
        settings.entities, enrichment,
    )  # fmt: skip
    out = settings.report_out
    try:
        write_report(data, out)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write: {exc.strerror}") from exc
    print(f"{len(data.alerts):,} alert(s), {len(data.entities)} entities: wrote {out}")
    return 0


def coverage(settings: Settings) -> int:
    from loader.coverage.batch import gap_settings, reference_time
    from loader.coverage.report import coverage as judge
    from loader.session import build_session

    gaps = gap_settings(settings)
    now = reference_time(settings.now)
    spark = build_session(settings, "tsa coverage")
    report = judge(spark, settings.database, gaps, settings.since, settings.until, now,
                   settings.table)  # fmt: skip
    print(report.render())
    return report.exit_code
