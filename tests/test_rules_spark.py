"""What `validate` accepts, Spark runs: the built-in function list is Spark's own, and a rule
using CTEs, joins, lateral views, lambdas, nested fields and the UDFs runs on real events."""

from __future__ import annotations

import pytest

from loader.rules.model import read_rule
from loader.rules.schema import FUNCTIONS_FILE
from loader.rules.validate import validate_rule
from tests.conftest import REPO
from tests.corpus import corpus_dir
from udfs import UDF_NAMES
from udfs.spark import EnrichmentConfig, register_udfs

pytestmark = pytest.mark.spark


def test_function_list_is_the_running_sparks(spark):
    listed = {
        line.strip()
        for line in FUNCTIONS_FILE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    running = {r[0].split(".")[-1] for r in spark.sql("SHOW FUNCTIONS").collect()}
    internal = {name for name in running if name.startswith("__tsa_")}  # the engine's own
    assert listed == running - set(UDF_NAMES) - internal


def test_a_valid_rule_runs_on_the_real_corpus(spark, corpus_tables):
    rule, problems = read_rule(REPO / "tests" / "rules" / "complex_ok.sql")
    assert problems == [] and validate_rule(rule) == []
    session = spark.newSession()
    register_udfs(session, EnrichmentConfig(tor_exit_list=str(corpus_dir("tor"))), refresh=False)
    session.table("corpus.cloudtrail").createOrReplaceTempView("cloudtrail")
    result = session.sql(rule.sql)
    import sqlglot

    assert result.columns == sqlglot.parse_one(rule.sql, read="spark").named_selects
    rows = result.collect()
    assert all(row["eventID"] and row["eventTime"] for row in rows)
