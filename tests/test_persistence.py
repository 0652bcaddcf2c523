"""`demo` as a user runs it (every sample query, detection telling the attack story, the report
opened in Chromium), and the tables outlive the process: `demo` creates them in a folder's
default (Derby) metastore and a fresh process uses them: `spark-sql -e` from the pyspark
wheel, also over the enriched view. Processes run one after the other, as Derby admits one
JVM at a time (beeline against `serve`, beside other processes, is in
test_shared_metastore.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import TOR_EXIT_IP

pytestmark = [pytest.mark.spark, pytest.mark.slow]
LOADER = [sys.executable, "-m", "loader"]
SPARK = [
    "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2",
    "--conf", "spark.ui.enabled=false",
]  # fmt: skip
TOR_QUERY = (
    "SELECT geoip_country(sourceIPAddress), geoip_asn(sourceIPAddress), "
    "is_tor_exit(sourceIPAddress), count(*) FROM {db}.cloudtrail "
    f"WHERE sourceIPAddress = '{TOR_EXIT_IP}' GROUP BY 1, 2, 3"
)


def spark_bin(name: str) -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:4]} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


def spark_sql(query: str, cwd: Path) -> list[str]:
    command = [spark_bin("spark-sql"), "--master", "local[1]", "-S", "-e", query]
    return run(command, cwd=cwd).stdout.splitlines()


def enrichment_flags(logs: Path) -> list[str]:
    return [
        f"--{key.replace('_', '-')}={logs / relative}" for key, relative in SAMPLE_FILES.items()
    ]


def check_demo_output(printed: str, folder: Path) -> None:
    """Every sample query, then detection telling the attack story, and the report."""
    from loader.demo import query_files
    from tests.test_report_browser import CHROMIUM, Recorder, console, foreign, open_page

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
    report = folder / "alerts.html"  # beside the sample
    assert "The report of these " in printed and str(report) in printed
    text = report.read_text()
    assert "dave" in text and "<h2>Blind spots</h2>" in text
    if CHROMIUM or os.environ.get("CI") == "true":  # as a person opens it
        import http.server
        import threading

        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            address = f"http://127.0.0.1:{proxy.server_address[1]}"
            dom, log = open_page(report, address, "--dump-dom")
        finally:
            proxy.shutdown()
        assert foreign(Recorder.seen) == [] and console(log) == []
        assert dom.count('class="main-svg"') >= 3 and 'class="point"' in dom


def test_the_demos_tables_persist_and_spark_sql_queries_the_enriched_view(tmp_path):
    """The Quickstart's `demo`, run as a user runs it, leaves tables that a new process sees."""
    demo = run([*LOADER, "demo", "--events", "1000", *SPARK], tmp_path, timeout=900)
    assert "events in new files: 1,000" in demo.stdout
    check_demo_output(demo.stdout, tmp_path)
    assert (tmp_path / "metastore_db").is_dir() and (tmp_path / "spark-warehouse").is_dir()
    rows = spark_sql(
        "SELECT count(*), count(DISTINCT account) FROM security.cloudtrail; "
        "SELECT country, asn_org, count(*) FROM security.cloudtrail_enriched WHERE is_tor "
        "GROUP BY 1, 2;",
        tmp_path,
    )
    assert rows == ["1000\t2", "Sweden\tForeningen for digitala fri\t8"]
