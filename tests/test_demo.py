"""`demo` runs every query in sql/queries/ over a generated sample, and the attack shows."""

from __future__ import annotations

import os

import pytest

from loader.cli import main
from loader.demo import query_files, query_text
from loader.sample.generate import TOR_EXIT_IP

pytestmark = pytest.mark.spark


def test_demo_prints_every_query_and_the_attack(spark, tmp_path, capsys):
    out = tmp_path / "sample"
    assert main(["demo", "--out", str(out), "--events", "1000", "--database", "demo"]) == 0
    printed = capsys.readouterr().out
    assert "events in new files: 1,000" in printed
    for path in query_files():
        assert f"## {path.name}" in printed
    changes = printed.split("## logging_and_iam_changes.sql")[1].split("## ")[0]
    assert "| StopLogging | arn:aws:iam::" in changes and f":root | {TOR_EXIT_IP} |" in changes
    assert "| CreateAccessKey |" in changes and "| backup-admin | AKIA" in changes
    # it ends with detection: the bundled rules, past their learning, tell the attack story
    detection = printed.split("## Detection: ")[1]
    assert "bundled rules over 1,000 events" in detection
    story = detection.split("The attack story (")[1]
    assert "dave: new country China; seen before: United States (new_country_for_principal" in story
    assert ":root: root_console_login (high)" in story
    assert ":root: cloudtrail_logging_tampered (critical)" in story
    assert "backup-admin: tor_exit_node_activity (high)" in story
    assert "blind spot: Tor exit lists: no list in force" in detection  # its list is of one day
    report = tmp_path / "alerts.html"  # beside the sample
    assert "The report of these " in printed and str(report) in printed
    assert "dave" in report.read_text()
    assert "<h2>Blind spots</h2>" in report.read_text()  # the Tor list of one day, said there too
    from tests.test_report_browser import CHROMIUM, Recorder, console, foreign, open_page

    if (
        CHROMIUM or os.environ.get("CI") == "true"
    ):  # the demo's own report, as a person opens it (tests/test_report_browser.py)
        import http.server
        import threading

        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            dom, log = open_page(
                report, f"http://127.0.0.1:{proxy.server_address[1]}", "--dump-dom"
            )
        finally:
            proxy.shutdown()
        assert foreign(Recorder.seen) == [] and console(log) == []
        assert dom.count('class="main-svg"') >= 3 and 'class="point"' in dom


def test_queries_run_on_the_real_corpus_tables(spark, corpus_tables):
    spark.catalog.setCurrentDatabase("corpus")
    try:
        results = {p.name: spark.sql(query_text(p)).collect() for p in query_files()}
    finally:
        spark.catalog.setCurrentDatabase("default")
    roots = {(r["eventSource"], r["eventName"]) for r in results["root_services_and_apis.sql"]}
    assert ("signin.amazonaws.com", "ConsoleLogin") in roots
    assert len(results["quarantined_files.sql"]) == 1
    stops = [r for r in results["logging_and_iam_changes.sql"] if r["eventName"] == "StopLogging"]
    assert stops  # Stratus Red Team's cloudtrail-stop detonation
