"""Streaming: run."""

from __future__ import annotations

import argparse

from loader.cli.options import (
    DATABASE,
    RULES,
    SOURCE,
    Option,
    command,
    coverage_options,
    engine_options,
)
from loader.config import Settings

SQS_QUEUE_URL = Option(
    "sqs_queue_url",
    "follow an SQS queue of CloudTrail SNS or S3 event notifications (raw, in SNS or "
    "EventBridge form) and read the objects they name through boto3",
    metavar="URL",
)
SQS_INBOX = Option(
    "sqs_inbox",
    "local folder where the SQS source keeps what it took in until committed (default: "
    "CHECKPOINT/sqs)",
    metavar="DIR",
)
SQS_VISIBILITY_TIMEOUT = Option(
    "sqs_visibility_timeout", "how long a received message stays hidden while its batch runs"
)
EVENTS_QUEUE_URL = Option(
    "events_queue_url",
    "also follow an SQS queue an EventBridge rule fills with CloudTrail events (raw or in SNS "
    "form): alerts within seconds; each event counts once, whether it comes from the queue, "
    "from a log file, or both",
    metavar="URL",
)
EVENTS_INBOX = Option(
    "events_inbox",
    "local folder where the events source keeps what it took in until committed (default: "
    "CHECKPOINT/events)",
    metavar="DIR",
)
DEDUP_WINDOW = Option(
    "dedup_window",
    "with --events-queue-url: how long (in event time) an event is remembered so its second "
    "arrival is dropped; longer than the trail's file delivery delay",
)
CHECKPOINT = Option("checkpoint", "checkpoint folder")
TRIGGER = Option("trigger", "how often to look for new files")
ONCE = Option("once", "process what is there now, then stop")
MAX_FILES = Option(
    "max_files",
    "at most this many new files per batch (default: all; the first batch then holds the "
    "whole history, evaluated in time order)",
)
HISTORY_TABLE = Option(
    "history_table",
    "a new checkpoint replays history from this materialized Parquet table (e.g. "
    "security.cloudtrail_parquet) for the days whose raw files are unchanged since materialize "
    "converted them; every other file is read raw",
    metavar="TABLE",
)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = command(
        commands, "run", run_stream, enrichment=True,
        help="the rules over history then new logs as they land (Structured Streaming)",
        description="Replay the CloudTrail logs under --source in time order while profiles "
        "learn, then keep watching for new files; alerts go to security.alerts. The "
        "checkpoint makes a restarted runner continue where it stopped. Rules are validated "
        "first.",
    )  # fmt: skip
    SOURCE.add(run, "a folder or s3:// prefix of CloudTrail logs (with --sqs-queue-url: the "
               "history replayed first, read through boto3)")  # fmt: skip
    for option in (
        SQS_QUEUE_URL, SQS_INBOX, SQS_VISIBILITY_TIMEOUT, EVENTS_QUEUE_URL, EVENTS_INBOX,
        DEDUP_WINDOW, CHECKPOINT, TRIGGER, ONCE, MAX_FILES, RULES, HISTORY_TABLE,
    ):  # fmt: skip
        option.add(run)
    DATABASE.add(run, "database of security.alerts")
    engine_options(run)
    coverage_options(run)


def run_stream(settings: Settings) -> int:
    import signal

    from loader.alerts.settings import build_deliverer
    from loader.cli.rules import explain
    from loader.coverage.batch import gap_settings
    from loader.coverage.live import LiveCoverage
    from loader.durations import parse_duration
    from loader.engine.plan import plan_rules
    from loader.enrichment import enriched_session
    from loader.rules.validate import load_valid_rules
    from loader.stream.inputs import check_inputs, open_inputs
    from loader.stream.runner import start

    rules = load_valid_rules(settings.rules)
    if settings.explain:
        return explain(rules, settings)
    trigger = parse_duration(settings.trigger)
    coverage = None
    if not settings.no_coverage:
        coverage = LiveCoverage(settings.database, gap_settings(settings), settings.max_files)
    deliverer = build_deliverer(settings)
    interval = parse_duration(str(settings.delivery.get("interval", "2s")), "delivery.interval")
    check_inputs(settings)
    visibility = int(parse_duration(settings.sqs_visibility_timeout, "--sqs-visibility-timeout"))
    window = None
    if settings.events_queue_url:
        window = parse_duration(settings.dedup_window, "--dedup-window")
    spark, enrichment = enriched_session(settings, "tsa run")
    inputs = open_inputs(spark, settings, visibility)
    runner = start(
        spark, inputs.events, plan_rules(rules, fuse=not settings.no_fuse), settings.database,
        settings.checkpoint, trigger, settings.once, report=lambda line: print(line, flush=True),
        strict=settings.strict, deliverer=deliverer, delivery_interval=interval,
        observed=inputs.observed, enrichment=enrichment, history=inputs.replay,
        coverage=coverage, dedup_window=window,
    )  # fmt: skip

    def stop(signum: int, _frame: object) -> None:
        print(f"stopping on {signal.Signals(signum).name}; the checkpoint keeps the place")
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return runner.wait()
