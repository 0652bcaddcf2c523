"""Rules: validate, test-rules, detect, export, import-sigma."""

from __future__ import annotations

import argparse
import sys

from loader.cli.options import (
    DATABASE,
    NO_FUSE,
    PATHS,
    RULES,
    SINCE,
    SOURCE,
    TABLE,
    UNTIL,
    Option,
    command,
    coverage_options,
    engine_options,
)
from loader.config import Settings
from loader.errors import ConfigError

OUTPUT = Option("output", "also write the alerts as JSON lines", metavar="FILE")
DIALECT = Option("dialect", "the SQL dialect to write")
EXPORT_DIR = Option("export_dir", "write NAME.sql per rule here", flag="--out", metavar="DIR")
EVERY = Option("every", "how often the queries will run")
SIGMA_SOURCES = Option("sigma_sources", "Sigma YAML files or folders", metavar="SRC")
SIGMA_OUT = Option("sigma_out", "folder for the rule files", flag="--out", metavar="DIR")
FORCE = Option("force", "replace rule files already in DIR")
SOURCE_URL = Option(
    "source_url",
    "base URL for each rule's `source` (its path under SRC is appended), e.g. "
    "https://github.com/SigmaHQ/sigma/blob/master/rules/cloud/aws; default: the path read",
    metavar="URL",
)
LICENSE = Option("license", "licence of rules that name none (default: DRL-1.1, SigmaHQ's)")
SIGMA_DEDUP = Option(
    "sigma_dedup", "a dedup window for every rule (Sigma has none)", flag="--dedup",
    metavar="DURATION",
)  # fmt: skip


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    validate = command(
        commands, "validate", validate_rules, spark=False,
        help="check rule files (no JVM): header keys, SQL, columns, functions",
        description="Check every rule under PATHS (files or folders of .sql files; default: "
        "the bundled sql/alerts and sql/profiles) and report every problem as "
        "path:line:col: message. Exits non-zero when there is any.",
    )  # fmt: skip
    PATHS.add(validate)

    test_rules = command(
        commands, "test-rules", run_rule_tests, enrichment=True,
        help="run the cases in each rule's sibling NAME.test.json",
        description="Validate the rules under PATHS (default: bundled), then run every case of "
        "their sibling NAME.test.json files. Without GeoIP/Tor flags the sample's databases "
        "and Tor list are used, so the tests are self-contained.",
    )  # fmt: skip
    PATHS.add(test_rules)
    NO_FUSE.add(test_rules, "run every rule alone, exactly as written")

    _register_detect(commands)
    _register_exchange(commands)


def _register_detect(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    detect = command(
        commands, "detect", detect_history, enrichment=True,
        help="run every rule over history in batch (backtest) into security.alerts",
        description="Evaluate the rules over the events of a table or a folder of logs, in "
        "time order, as a live run would have; append new alerts to security.alerts and print "
        "a summary per rule. Rules are validated first.",
    )  # fmt: skip
    where = detect.add_mutually_exclusive_group()
    TABLE.add(where)
    SOURCE.add(where, "a folder or s3:// prefix of CloudTrail logs, read directly")
    SINCE.add(detect)
    UNTIL.add(detect)
    RULES.add(detect)
    OUTPUT.add(detect)
    DATABASE.add(detect, "database of security.alerts")
    engine_options(detect)
    coverage_options(detect)


def _register_exchange(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Rules to and from elsewhere: Athena queries, Sigma rules."""
    export = command(
        commands, "export", export_rules, spark=False,
        help="the rules as Athena (Trino) queries to schedule, transpiled with sqlglot",
        description="Write every rule as an Athena query: Spark-only SQL rewritten (JSON "
        "functions, exists, UNNEST), GeoIP/Tor functions joined against the exported "
        "ip_enrichment table, profiles as 'first seen' queries over their history window. A "
        "rule that cannot be expressed is reported as not portable and not written.",
    )  # fmt: skip
    DIALECT.add(export)
    RULES.add(export)
    EXPORT_DIR.add(export)
    DATABASE.add(export, "Glue database of the tables")
    EVERY.add(export)

    sigma = command(
        commands, "import-sigma", import_sigma, spark=False,
        help="turn Sigma rules (AWS CloudTrail) into rule files, with pySigma",
        description="Convert every Sigma rule in SRC (YAML files or folders; a SigmaHQ "
        "checkout works) whose logsource is product aws / service cloudtrail into a rule file "
        "DIR/sigma_<file stem>.sql, validate what was written, and report every rule as "
        "converted, skipped or failed with the reason. Needs the [sigma] extra.",
    )  # fmt: skip
    sigma.add_argument("sigma_sources", nargs="+", metavar="SRC", help=SIGMA_SOURCES.help)
    SIGMA_OUT.add(sigma, required=True)
    for option in (FORCE, SOURCE_URL, LICENSE, SIGMA_DEDUP):
        option.add(sigma)


def validate_rules(settings: Settings) -> int:
    from loader.rules.validate import BUNDLED, load_rules

    paths = settings.paths or [str(p) for p in BUNDLED]
    rules, problems = load_rules(paths)
    for problem in sorted(problems):
        print(problem)
    verdict = f"{len(problems)} problem(s)" if problems else "no problems"
    print(f"{len(rules)} rule file(s) checked: {verdict}", file=sys.stderr)
    return 1 if problems else 0


def run_rule_tests(settings: Settings) -> int:
    import tempfile

    from loader.engine.ruletests import run_rule_tests as run_tests
    from loader.enrichment import enriched_session, with_sample_sources
    from loader.rules.errors import RuleError
    from loader.rules.validate import load_valid_rules
    from loader.sample.enrichment_data import write_enrichment_data

    rules = load_valid_rules(settings.paths or None)
    with tempfile.TemporaryDirectory(prefix="tsa-rule-tests-") as sample:
        write_enrichment_data(sample)
        with_sample_sources(settings, sample)
        spark, enrichment = enriched_session(settings, "tsa test-rules")
        report, problems = run_tests(spark, rules, fuse=not settings.no_fuse, enrichment=enrichment)
    if problems:
        raise RuleError(problems)
    print(report.render())
    return 1 if report.failed else 0


def explain(rules: list, settings: Settings) -> int:  # type: ignore[type-arg]
    from loader.engine.plan import plan_rules

    print(plan_rules(rules, fuse=not settings.no_fuse).explain())
    return 0


def detect_history(settings: Settings) -> int:
    from loader.alerts.outbox import deliver_until_done
    from loader.alerts.settings import build_deliverer
    from loader.batch.detect import detect, events_relation, source_events
    from loader.coverage.batch import detect_coverage
    from loader.enrichment import enriched_session
    from loader.rules.validate import load_valid_rules

    rules = load_valid_rules(settings.rules)
    if settings.explain:
        return explain(rules, settings)
    spark, enrichment = enriched_session(settings, "tsa detect")
    since, until = settings.since, settings.until
    if settings.source and not settings.table:
        events = source_events(spark, settings.source)
        events.createOrReplaceTempView("__detect_events")
        events = events_relation(spark, "__detect_events", since, until)
    else:
        table = settings.table or f"{settings.database}.cloudtrail"
        events = events_relation(spark, table, since, until)
    deliverer = build_deliverer(settings)  # config problems before the long part
    report = detect(
        spark, rules, events, settings.database, settings.output,
        fuse=not settings.no_fuse, enrichment=enrichment, strict=settings.strict,
        coverage=detect_coverage(spark, settings),
    )  # fmt: skip
    print(report.render())
    if deliverer is not None:
        deliver_until_done(spark, settings.database, deliverer, wait=0.0)
    return 1 if report.failed else 0


def export_rules(settings: Settings) -> int:
    from loader.durations import parse_duration
    from loader.engine.export import export_rules as export
    from loader.rules.validate import load_valid_rules

    rules = load_valid_rules(settings.rules)
    every = int(parse_duration(settings.every, "--every"))
    report = export(rules, settings.database, settings.export_dir, every)
    if not settings.export_dir:
        for rule in report.rules:
            if rule.sql is not None:
                print(rule.sql)
    print(report.render(), file=sys.stderr if not settings.export_dir else sys.stdout)
    return 0  # what is not portable is listed; the rest is ready


def import_sigma(settings: Settings) -> int:
    from loader.sigma.importer import import_sigma as convert

    if not settings.sigma_out:
        raise ConfigError("import-sigma needs --out DIR")
    report = convert(
        settings.sigma_sources, settings.sigma_out, settings.force, settings.source_url,
        settings.license, settings.sigma_dedup,
    )  # fmt: skip
    print(report.render())
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return 1 if report.problems else 0
