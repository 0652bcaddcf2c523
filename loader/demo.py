"""`demo`: the whole product on a generated sample, in the current directory."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from loader.config import Settings
from loader.enrichment import SAMPLE_FILES, enriched_session, with_sample_sources
from loader.sample.enrichment_data import write_enrichment_data
from loader.sample.generate import SampleSpec, write_sample
from loader.tables.create_cloudtrail import create_cloudtrail_tables
from loader.tables.enrich import enrich

QUERIES = Path(__file__).resolve().parents[1] / "sql" / "queries"
SHOWN_ROWS = 15
CELL = 60
DEMO_DAYS = 21  # past the profiles' 14 days of learning, so the attack day raises them
REPORT = "alerts.html"


def query_files(folder: Path = QUERIES) -> list[Path]:
    return sorted(folder.glob("*.sql"))


def query_text(path: Path) -> str:
    """The statement of a query file, without comment lines or a trailing semicolon."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """Rows as a markdown table, long cells cut so a terminal stays readable."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= CELL else text[: CELL - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_demo(settings: Settings, out: str = "sample", events: int = 20_000) -> int:
    """Generate (once), load, enrich, show every query in sql/queries/, detect with the
    bundled rules, explain the attack story's alerts and write the HTML report."""
    if not os.path.isdir(os.path.join(out, "AWSLogs")):
        print(write_sample(out, SampleSpec(events=events, days=DEMO_DAYS)).render())
    else:
        print(f"using the sample already in {out}/")
        if not os.path.exists(os.path.join(out, SAMPLE_FILES["geoip_city_db"])):
            write_enrichment_data(out)
    with_sample_sources(settings, out)
    spark, enrichment = enriched_session(settings, "tsa demo")
    logs = os.path.join(out, "AWSLogs")  # not the sample's GeoIP and Tor files beside it
    print(create_cloudtrail_tables(spark, logs, settings.database).render())
    print(enrich(spark, settings.database, enrichment).render())
    spark.catalog.setCurrentDatabase(settings.database)
    for path in query_files():
        df = spark.sql(query_text(path))
        rows = [tuple(r) for r in df.limit(SHOWN_ROWS + 1).collect()]
        print(f"\n## {path.name}\n")
        print(format_table(df.columns, rows[:SHOWN_ROWS]))
        if len(rows) > SHOWN_ROWS:
            print(
                f"(first {SHOWN_ROWS} rows; run `spark-sql --database {settings.database} "
                f"-f sql/queries/{path.name}` for all)"
            )
    spark.catalog.setCurrentDatabase("default")
    report = os.path.join(os.path.dirname(os.path.abspath(out)), REPORT)  # beside the sample
    alerts = _detect(spark, settings.database, enrichment, report)
    print(
        f"\nTables are in the {settings.database} database of ./metastore_db; try:\n"
        f"  spark-sql --database {settings.database} -e 'SELECT eventName, count(*) "
        "FROM cloudtrail GROUP BY 1 ORDER BY 2 DESC LIMIT 10'"
    )
    print(f"\nThe report of these {alerts:,} alerts: {report} (open it in a browser)")
    return 0


def _detect(spark: Any, database: str, enrichment: Any, report_file: str) -> int:
    """The bundled rules over the sample, the alerts per rule and severity, the attack story
    in one line per alert, and the report; the number of alerts."""
    from loader.batch.detect import detect, events_relation
    from loader.report.data import read_report_data
    from loader.report.render import write_report
    from loader.rules.validate import load_valid_rules

    rules = load_valid_rules(None)
    events = events_relation(spark, f"{database}.cloudtrail", None, None)
    report = detect(spark, rules, events, database, enrichment=enrichment)
    rows = spark.sql(
        f"SELECT rule, severity, kind, entity, value, title, details, event_time, account "
        f"FROM {database}.alerts ORDER BY event_time, rule"
    ).collect()
    print(f"\n## Detection: {len(rules)} bundled rules over {report.events:,} events\n")
    counts = Counter((r.rule, r.severity) for r in rows)
    print(format_table(["rule", "severity", "alerts"],
                       [(rule, sev, n) for (rule, sev), n in sorted(counts.items())]))  # fmt: skip
    for line in report.blind:
        print(f"blind spot: {line}")
    if rows:
        last = max(r.event_time for r in rows if r.event_time).date()
        story = [r for r in rows if r.event_time and r.event_time.date() == last]
        print(f"\nThe attack story ({last}), alert by alert:")
        for row in story:
            print(f"  {row.event_time:%H:%M} {explain(row)}")
    data = read_report_data(spark, database)
    data.blind = report.blind  # what detect found over the same events
    write_report(data, report_file)
    return len(rows)


def explain(row: Any) -> str:
    """One line from an alert: who, what was new, what was known before."""
    import json

    try:
        details = json.loads(row.details) if row.details else {}
    except ValueError:
        details = {}
    entity = row.entity or f"account {row.account}"  # an account-wide profile
    if details.get("scope"):  # account-wide: its entity is the account (or none)
        entity = f"account {row.account}" if details["scope"] == "account" else "organization"
    who = entity.rsplit("/", 1)[-1] if entity.startswith("arn:") and "/" in entity else entity
    if row.kind == "baseline":
        return f"{who}: {details.get('summary', row.value)} ({row.rule}, {row.severity})"
    if row.kind == "profile":
        what = row.rule.removesuffix("_for_principal").replace("_", " ")
        known = details.get("recent_values") or []
        before = f"; seen before: {', '.join(map(str, known))}" if known else ""
        return f"{who}: {what} {row.value}{before} ({row.rule}, {row.severity})"
    return f"{who}: {row.rule} ({row.severity})"
