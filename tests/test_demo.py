"""The sample queries over the real corpus (`demo` itself, run as a user runs it, is checked in
tests/test_persistence.py: its queries, its detection and its report)."""

from __future__ import annotations

import pytest

from loader.demo import query_files, query_text

pytestmark = pytest.mark.spark


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
