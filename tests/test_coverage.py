"""Coverage on Spark: a generated history delivered as CloudTrail does (a file per region per
hour, written minutes after its events), one region's files removed for 5 hours and one
account's last day missing. `coverage` reports exactly those two gaps (exit 3); Spark's series
are the Python oracle's; `log_coverage` counts every file and event; `detect` raises two
`log_delivery_gap` alerts once; `run` raises none while the silence is shorter than its
threshold and the same two once the history is complete."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from loader.cli import main
from loader.coverage.deliveries import deliveries_table, judge_relation
from loader.coverage.gaps import ALL_REGIONS, GapSettings
from loader.sample.generate import write_sample
from tests.test_coverage_gaps import HISTORY, NAME, deliveries_of, python_series

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]
ONE_RULE = str(REPO / "sql" / "alerts" / "console_login_without_mfa.sql")  # normal life has some


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    root = tmp_path_factory.mktemp("coverage") / "logs"
    summary = write_sample(str(root), HISTORY)
    first, second = summary.accounts
    day = dt.datetime.fromisoformat(summary.days[0])
    hole = (day + dt.timedelta(hours=10), day + dt.timedelta(hours=15))
    for path in list((root / "AWSLogs").rglob("*.json.gz")):
        match = NAME.match(path.name)
        moment = dt.datetime.strptime(match[3], "%Y%m%dT%H%M")
        in_hole = match[1] == second and match[2] == "us-east-1" and hole[0] <= moment < hole[1]
        if in_hole or f"/{first}/" in str(path) and summary.days[1].replace("-", "/") in str(path):
            path.unlink()
    for extra in ("geoip", "tor"):
        shutil.rmtree(root / extra)
    create_cloudtrail_tables(spark, str(root), "cov")
    return root, summary, hole


def test_coverage_reports_exactly_the_two_gaps(spark, history, capsys):
    root, summary, hole = history
    first, second = summary.accounts
    assert main(["coverage", "--database", "cov"]) == 3
    out = capsys.readouterr().out
    assert "gaps: 2\n" in out, out
    lines = [line for line in out.splitlines() if line.startswith("  ") and ": 20" in line]
    # from its last file before the hole: written minutes after the events of 08:00-10:00
    assert re.match(rf"  {second}/us-east-1: {summary.days[0]} 0[89]:\d\d \.\. ", lines[0])
    assert f"{summary.days[0]} 15:" in lines[0] and "other regions delivered" in lines[0]
    assert lines[1].startswith(f"  {first}/all regions: ")  # from its last file, on day 2 or
    # just after midnight (a file is written minutes after its events)
    assert "still silent" in lines[1]
    # every account/region with its span, files, events and delivery delay
    assert out.count(f"| {second} | ") == 3 and out.count(f"| {first} | ") == 3
    # the Spark statistics are the Python oracle's
    files = deliveries_of(root / "AWSLogs")
    series, intervals = python_series(files, 3600.0)
    judged = judge_relation(spark, deliveries_table("cov"), GapSettings())
    assert [(s.account, s.region, s.files, s.first, s.last) for s in judged.series] == [
        (s.account, s.region, s.files, s.first, s.last) for s in series
    ]
    assert [s.p99 for s in judged.series] == pytest.approx([s.p99 for s in series])
    assert [(g.account, g.region) for g in judged.gaps] == [
        (second, "us-east-1"),
        (first, ALL_REGIONS),
    ]
    # a time window before the gaps has none; the clock as reference finds every series silent
    until = judge_relation(spark, deliveries_table("cov"), GapSettings(), None,
                           f"delivered_at < timestamp '{summary.days[0]} 09:00'")  # fmt: skip
    assert until.series and until.gaps == []
    assert main(["coverage", "--database", "cov", "--now", "now"]) == 3
    out = capsys.readouterr().out.split("gaps: ")[-1]
    assert f"{first}/all regions" in out and f"{second}/all regions" in out


def test_log_coverage_counts_every_file_and_event(spark, history):
    root, _, _ = history
    paths = list((root / "AWSLogs").rglob("*.json.gz"))
    events = sum(len(json.loads(gzip.decompress(p.read_bytes()))["Records"]) for p in paths)
    row = spark.sql(
        "SELECT sum(files) AS files, sum(events) AS events, min(median_delay_seconds) AS low, "
        "max(max_delay_seconds) AS high, count(DISTINCT account, region) AS series "
        "FROM cov.log_coverage"
    ).first()
    assert (row.files, row.events, row.series) == (len(paths), events, 6)
    # written 1 to 5 minutes after the newest event; the name keeps only the minute
    assert -60 < row.low and row.high <= 300


def test_detect_raises_two_gap_alerts_once(spark, history, tmp_path, capsys):
    _, summary, _ = history
    first, second = summary.accounts
    output = tmp_path / "alerts.jsonl"
    args = ["detect", "--database", "cov", "--rules", ONE_RULE, "--output", str(output)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| log_delivery_gap | 2 | 2 |" in out, out
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    gaps = sorted((a["entity"], a["kind"], a["details"]["open"]) for a in alerts
                  if a["rule"] == "log_delivery_gap")  # fmt: skip
    assert gaps == sorted([(f"{second}/us-east-1", "coverage", False),
                           (f"{first}/*", "coverage", True)])  # fmt: skip


def test_run_alerts_once_a_silence_is_longer_than_its_threshold(spark, history, tmp_path, capsys):
    root, summary, hole = history
    expected = {
        r.alert_id
        for r in spark.sql(
            "SELECT alert_id FROM cov.alerts WHERE rule = 'log_delivery_gap'"
        ).collect()
    }
    assert len(expected) == 2
    # live: the files written after the region's first hour of silence have not arrived yet
    cut = hole[0] + dt.timedelta(hours=1)
    held = tmp_path / "held"
    late = [p for p in (root / "AWSLogs").rglob("*.json.gz")
            if dt.datetime.strptime(NAME.match(p.name)[3], "%Y%m%dT%H%M") >= cut]  # fmt: skip
    for path in late:
        target = held / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    run = ["run", "--source", str(root / "AWSLogs"), "--once", "--database", "covrun",
           "--rules", ONE_RULE, "--checkpoint", str(tmp_path / "ck")]  # fmt: skip
    assert main(run) == 0
    assert "log_delivery_gap" not in capsys.readouterr().out
    spark.catalog.refreshTable("covrun.alerts")
    assert spark.sql("SELECT * FROM covrun.alerts WHERE kind = 'coverage'").count() == 0
    for path in late:  # they land
        shutil.move(held / path.relative_to(root), path)
    assert main(run) == 0
    assert "2 new log_delivery_gap alert(s)" in capsys.readouterr().out
    spark.catalog.refreshTable("covrun.alerts")
    found = {r.alert_id for r in spark.sql(
        "SELECT alert_id FROM covrun.alerts WHERE kind = 'coverage'").collect()}  # fmt: skip
    assert found == expected
    spark.catalog.refreshTable("covrun.log_deliveries")
    assert spark.table("covrun.log_deliveries").count() == len(deliveries_of(root / "AWSLogs"))


def test_report_over_the_tables(spark, history, tmp_path, capsys):
    """`report` over the detect alerts above: one offline HTML file with a sign-in's activity
    timeline and raw event, and the gaps with their reasons."""
    out = tmp_path / "alerts.html"
    assert main(["report", "--database", "cov", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    signed_in = spark.sql("SELECT entity FROM cov.alerts WHERE kind = 'alert'").first().entity
    assert f'<h3 class="entity">{signed_in}</h3>' in text
    assert re.search(r'id="timeline-\d+"', text)  # its events per hour around its alerts
    assert "&#34;eventName&#34;: &#34;ConsoleLogin&#34;" in text  # the raw event, from raw_json
    assert "the account&#39;s other regions delivered meanwhile" in text
    assert "no table cov.alert_deliveries" not in text  # detect made it: status known (none)
    assert main(["report", "--database", "nothing_here", "--out", str(out)]) == 1
    assert "no table nothing_here.alerts here" in capsys.readouterr().err
