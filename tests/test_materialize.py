"""`materialize`: raw days converted to Parquet once each; a day whose raw files changed is
redone, the others are not; the Parquet table answers exactly as the raw view does."""

from __future__ import annotations

import gzip
import json

import pytest

from loader.cli import main
from loader.sample.generate import SampleSpec, write_sample
from loader.tables.cloudtrail_schema import view_columns

pytestmark = pytest.mark.spark


def _same_rows(spark, db: str) -> None:
    names = ", ".join(name for name, _ in view_columns())
    raw, parquet = (
        f"SELECT {names} FROM {db}.cloudtrail",
        f"SELECT {names} FROM {db}.cloudtrail_parquet",
    )
    assert spark.sql(f"{raw} EXCEPT ALL {parquet}").count() == 0
    assert spark.sql(f"{parquet} EXCEPT ALL {raw}").count() == 0


def test_materialize_converts_each_day_once_and_redoes_a_changed_day(spark, tmp_path, capsys):
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=900, days=3, events_per_file=10))
    create_cloudtrail_tables(spark, str(logs / "AWSLogs"), "mat")
    days = spark.sql("SELECT DISTINCT account, region, dt FROM mat.cloudtrail").count()

    # many small read tasks, as years of raw logs give: still one Parquet file per day
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        assert main(["materialize", "--database", "mat"]) == 0
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    out = capsys.readouterr().out
    assert f"{days} days in the raw table, {days} converted, 0 redone" in out
    assert f"{summary.events:,} events in" in out
    _same_rows(spark, "mat")
    files_per_day = spark.sql(
        "SELECT count(DISTINCT _metadata.file_path) AS files FROM mat.cloudtrail_parquet "
        "GROUP BY account, region, dt"
    ).collect()
    assert len(files_per_day) == days and {r.files for r in files_per_day} == {1}
    query = "SELECT eventName, count(*) AS n FROM mat.{} GROUP BY eventName ORDER BY eventName"
    assert (
        spark.sql(query.format("cloudtrail_parquet")).collect()
        == spark.sql(query.format("cloudtrail")).collect()
    )

    assert main(["materialize", "--database", "mat"]) == 0  # nothing changed: nothing to do
    assert f"0 converted, 0 redone (raw files changed), {days} already up to date" in (
        capsys.readouterr().out
    )

    # a late file lands in one day's folder: that day alone is redone
    folder = sorted((logs / "AWSLogs").rglob("*_CloudTrail_*.json.gz"))[0].parent
    late = {"eventVersion": "1.08", "eventID": "late-1", "eventName": "LateCall",
            "eventTime": "2024-03-29T23:59:59Z", "eventSource": "sts.amazonaws.com",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/late"}}  # fmt: skip
    name = folder / f"{folder.parts[-6]}_CloudTrail_{folder.parts[-4]}_20240329T2359Z_late.json.gz"
    name.write_bytes(gzip.compress(json.dumps({"Records": [late]}).encode()))
    spark.catalog.refreshTable("mat.cloudtrail_raw")
    assert main(["materialize", "--database", "mat"]) == 0
    assert f"0 converted, 1 redone (raw files changed), {days - 1} already up to date" in (
        capsys.readouterr().out
    )
    _same_rows(spark, "mat")
    assert (
        spark.sql("SELECT count(*) FROM mat.cloudtrail_parquet WHERE eventID = 'late-1'").first()[0]
        == 1
    )

    # detect reads the Parquet table as it reads the view: the same alerts
    from loader.rules.validate import SQL

    rules = ["--rules", str(SQL / "alerts/root_account_usage.sql"),
             str(SQL / "alerts/console_login_without_mfa.sql")]  # fmt: skip
    found = {}
    for table in ("cloudtrail", "cloudtrail_parquet"):
        output = tmp_path / f"{table}.jsonl"
        args = ["detect", "--table", f"mat.{table}", "--database", "mat", "--output", str(output)]
        assert main([*args, *rules]) == 0
        found[table] = sorted(json.loads(line)["alert_id"] for line in output.open())
    assert found["cloudtrail"] and found["cloudtrail"] == found["cloudtrail_parquet"]

    last = summary.days[-1]
    assert main(["materialize", "--database", "mat", "--since", last]) == 0
    assert "0 converted, 0 redone" in capsys.readouterr().out
