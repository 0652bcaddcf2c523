"""Fast tier: DDL built as text, checked by parsing it back with sqlglot (Spark dialect)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from loader.errors import LoaderError
from loader.tables import cloudtrail_ddl as ddl
from loader.tables.cloudtrail_schema import EVENT_FIELDS, json_schema, view_columns


def parse(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read="spark")


def test_raw_table_is_external_partitioned_json_that_survives_bad_files():
    sql = ddl.create_raw_table("security", "cloudtrail_raw", "s3://b/it's", "raw")
    assert "LOCATION 's3://b/it\\'s'" in sql
    assert "PARTITIONED BY (account, region, dt)" in sql
    assert "ignoreCorruptFiles 'true'" in sql and "multiLine 'true'" in sql
    assert "Records ARRAY<STRING>" in sql


def test_partitions_are_batched_with_explicit_locations():
    parts = [("1" * 12, "us-east-1", f"2024-01-{d:02d}", f"/l/{d}") for d in range(1, 31)] * 15
    statements = ddl.add_partitions("security", "cloudtrail_raw", parts)
    assert len(statements) == 3  # 450 partitions, 200 per statement
    assert statements[0].count("PARTITION (") == 200
    assert "LOCATION '/l/1'" in statements[0]


def test_views_parse_and_expose_every_field():
    view = parse(ddl.events_view("security").statement())
    select = view.find(exp.Select)
    names = [e.alias_or_name for e in select.expressions]
    assert names == [name for name, _ in view_columns()]
    assert "from_json" in ddl.events_view("security").query
    for view in ddl.views("security"):
        parse(view.statement())


def test_from_json_schema_parses_as_spark_types():
    for field in EVENT_FIELDS:
        sqlglot.parse_one(f"CAST(x AS {field.json_type})", read="spark")
    assert json_schema(EVENT_FIELDS).startswith("eventVersion string, userIdentity struct<type")


@pytest.mark.parametrize("name", ["security", "sec_2024", "_x"])
def test_good_database_names(name):
    assert ddl.check_identifier(name) == name


@pytest.mark.parametrize("name", ["1abc", "a-b", "a;drop", ""])
def test_bad_database_names(name):
    with pytest.raises(LoaderError, match="invalid database name"):
        ddl.check_identifier(name)
