"""`demo` runs every query in sql/queries/ over a generated sample, and the attack shows."""

from __future__ import annotations

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
