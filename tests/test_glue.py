"""`create-glue-table` against a moto server on 127.0.0.1 (real HTTP): the Glue database, the
CloudTrail table exactly as Athena documents it with projection over account, region and day,
the Athena view, the S3 access log table; a rerun changes nothing; a change is updated, with
parameters added by someone else kept; `--dry-run` DDL parses as Trino SQL."""

from __future__ import annotations

import base64
import json

import pytest
import sqlglot

from loader.cli import main
from loader.tables import glue as g

BUCKET = "trail-bucket-glue"
ACCOUNTS = ("111122223333", "444455556666")


def _put(s3, account: str, region: str, day: str) -> None:
    key = (
        f"logs/AWSLogs/{account}/CloudTrail/{region}/{day}/"
        f"{account}_CloudTrail_{region}_{day.replace('/', '')}T0000Z_x.json.gz"
    )
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")


@pytest.fixture
def aws(moto_server):
    import boto3

    s3, glue = boto3.client("s3"), boto3.client("glue")
    s3.create_bucket(Bucket=BUCKET)
    _put(s3, ACCOUNTS[0], "us-east-1", "2023/05/01")
    _put(s3, ACCOUNTS[0], "eu-west-1", "2024/01/02")
    _put(s3, ACCOUNTS[1], "us-east-1", "2024/03/31")
    s3.put_object(Bucket=BUCKET, Key=f"logs/AWSLogs/{ACCOUNTS[0]}/CloudTrail-Digest/x", Body=b"")
    yield s3, glue
    for name in ("sec", "acc"):
        try:
            for table in glue.get_tables(DatabaseName=name)["TableList"]:
                glue.delete_table(DatabaseName=name, Name=table["Name"])
            glue.delete_database(Name=name)
        except glue.exceptions.EntityNotFoundException:
            pass
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


SOURCE = f"s3://{BUCKET}/logs/AWSLogs/"
ROOT = f"s3://{BUCKET}/logs/AWSLogs"


def test_cloudtrail_table_and_view_are_athenas_then_a_rerun_changes_nothing(aws, capsys):
    s3, glue = aws
    assert main(["create-glue-table", "--source", SOURCE, "--database", "sec"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "sec.(database) created", "sec.cloudtrail_logs: created", "sec.cloudtrail: created",
    ]  # fmt: skip
    table = glue.get_table(DatabaseName="sec", Name="cloudtrail_logs")["Table"]
    storage = table["StorageDescriptor"]
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    assert storage["InputFormat"] == "com.amazon.emr.cloudtrail.CloudTrailInputFormat"
    assert storage["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    assert storage["Location"] == ROOT + "/"
    columns = {c["Name"]: c["Type"] for c in storage["Columns"]}
    assert len(columns) == 29
    assert columns["requestparameters"] == columns["responseelements"] == "string"
    assert (
        "sessionissuer:struct<type:string,principalid:string,arn:string" in columns["useridentity"]
    )
    assert columns["resources"] == "array<struct<arn:string,accountid:string,type:string>>"
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("account", "string"), ("region", "string"), ("dt", "string"),
    ]  # fmt: skip
    params = table["Parameters"]
    assert {k: v for k, v in params.items() if k.startswith(("projection", "storage"))} == {
        "projection.enabled": "true",
        "projection.account.type": "enum",
        "projection.account.values": ",".join(ACCOUNTS),
        "projection.region.type": "enum",
        "projection.region.values": "eu-west-1,us-east-1",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy/MM/dd",
        "projection.dt.range": "2023/01/01,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "storage.location.template": ROOT + "/${account}/CloudTrail/${region}/${dt}",
    }
    view = glue.get_table(DatabaseName="sec", Name="cloudtrail")["Table"]
    assert view["TableType"] == "VIRTUAL_VIEW" and view["Parameters"]["presto_view"] == "true"
    encoded = view["ViewOriginalText"].removeprefix("/* Presto View: ").removesuffix(" */")
    presto = json.loads(base64.b64decode(encoded))
    types = {c["name"]: c["type"] for c in presto["columns"]}
    assert types["eventtime"] == "timestamp" and types["readonly"] == "boolean"
    assert types["useridentity"].startswith("row(type varchar, principalid varchar")
    # the derived principal, as Spark's view has it, for the rules exported to Athena
    assert list(types)[-5:] == ["principal", "account", "region", "dt", "source_file"]
    assert types["principal"] == "varchar"
    assert (
        "coalesce(nullif(useridentity.arn, ''), useridentity.principalid) AS principal"
        in (presto["originalSql"])
    )
    parsed = sqlglot.parse_one(presto["originalSql"], read="trino")
    assert parsed.find(sqlglot.exp.Table).sql("trino") == "sec.cloudtrail_logs"

    # a rerun: nothing changes
    versions = len(glue.get_table_versions(DatabaseName="sec", TableName="cloudtrail_logs")[
        "TableVersions"
    ])  # fmt: skip
    assert main(["create-glue-table", "--source", SOURCE, "--database", "sec"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "sec.cloudtrail_logs: unchanged", "sec.cloudtrail: unchanged",
    ]  # fmt: skip
    after = glue.get_table_versions(DatabaseName="sec", TableName="cloudtrail_logs")
    assert len(after["TableVersions"]) == versions

    # someone adds a parameter; logs of a new region land: the region is added, theirs kept
    mine = dict(table, Parameters={**params, "owner_team": "secops"})
    allowed = ("Name", "Description", "TableType", "PartitionKeys", "Parameters",
               "StorageDescriptor")  # fmt: skip
    glue.update_table(DatabaseName="sec", TableInput={k: mine[k] for k in allowed if k in mine})
    _put(s3, ACCOUNTS[1], "ap-south-1", "2024/03/31")
    assert main(["create-glue-table", "--source", SOURCE, "--database", "sec"]) == 0
    assert "sec.cloudtrail_logs: updated (Parameters)" in capsys.readouterr().out
    params = glue.get_table(DatabaseName="sec", Name="cloudtrail_logs")["Table"]["Parameters"]
    assert params["projection.region.values"] == "ap-south-1,eu-west-1,us-east-1"
    assert params["owner_team"] == "secops"


def test_dry_run_prints_athena_ddl_that_parses_as_trino(aws, capsys):
    glue = aws[1]
    assert main(["create-glue-table", "--source", SOURCE, "--dry-run"]) == 0
    out = capsys.readouterr().out
    statements = [s.strip().rstrip(";") for s in out.split(";\n") if s.strip()]
    assert len(statements) == 2
    for statement in statements:  # no fallback to an opaque command: Trino reads all of it
        parsed = sqlglot.parse_one(statement, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
        assert isinstance(parsed, sqlglot.exp.Create), statement[:80]
    assert "ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'" in statements[0]
    assert "'projection.dt.range'='2023/01/01,NOW'" in statements[0]
    assert statements[1].startswith("CREATE OR REPLACE VIEW security.cloudtrail AS")
    assert glue.get_databases()["DatabaseList"] == []  # nothing created


def test_s3_access_log_table_uses_the_hive_tables_expression(aws, capsys):
    from loader.tables.s3_access_ddl import FIELDS, REGEX

    source = f"s3://{BUCKET}/access/"
    assert main(["create-glue-table", "--source", source, "--kind", "s3-access-logs",
                 "--database", "acc"]) == 0  # fmt: skip
    table = aws[1].get_table(DatabaseName="acc", Name="s3_access_logs")["Table"]
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.RegexSerDe"
    assert serde["Parameters"]["input.regex"] == REGEX
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names == [f.name for f in FIELDS] + ["extra"] and len(FIELDS) == 26


def test_a_source_outside_the_layout_is_refused(aws, capsys):
    assert main(["create-glue-table", "--source", f"s3://{BUCKET}/logs/"]) == 1
    assert "give the AWSLogs folder of a trail" in capsys.readouterr().err
    assert g.CLOUDTRAIL_TABLE == "cloudtrail_logs"
