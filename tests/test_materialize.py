"""`materialize`: raw days converted to Parquet once each; a day whose raw files changed is
redone, the others are not; the Parquet table answers exactly as the raw view does."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from loader.cli import main
from loader.sample.generate import SampleSpec, write_sample
from loader.tables.cloudtrail_schema import stored_columns

pytestmark = pytest.mark.spark


def _same_rows(spark, db: str) -> None:
    names = ", ".join(name for name, _ in stored_columns())
    raw, parquet = (
        f"SELECT {names} FROM {db}.cloudtrail",
        f"SELECT {names} FROM {db}.cloudtrail_parquet",
    )
    assert spark.sql(f"{raw} EXCEPT ALL {parquet}").count() == 0
    assert spark.sql(f"{parquet} EXCEPT ALL {raw}").count() == 0
    # the derived principal, not stored, is computed again when the table is read for rules
    from loader.batch.detect import events_relation

    read = events_relation(spark, f"{db}.cloudtrail_parquet", None, None)
    view = spark.table(f"{db}.cloudtrail")
    pairs = [frame.select("eventID", "principal") for frame in (read, view)]
    assert pairs[0].exceptAll(pairs[1]).count() == 0 and pairs[1].exceptAll(pairs[0]).count() == 0


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


# a per-principal profile that learns for a day: history read from the table or raw makes a
# difference to what it knows at the seam
SHORT_PROFILE = """/*
name: new_region_quickly
kind: profile
description: a principal acts in a region new for it, after one day of learning
severity: low
entity: principal
value: region
learning: 1 day
*/
SELECT eventTime, eventID, userIdentity.arn AS principal, awsRegion AS region
FROM cloudtrail WHERE userIdentity.arn IS NOT NULL
"""


def _move(paths, source, target):
    """Move ``paths`` (relative) from folder ``source`` to folder ``target``."""
    for path in paths:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source / path, target / path)


def test_run_replays_materialized_days_from_parquet_then_raw_files(spark, tmp_path, capsys):
    """`run --history-table`: the first half of the history materialized to Parquet, the
    second half only raw, the attack day landing later. The days come from the table, the rest
    from raw files, each event once: the alerts are exactly `detect`'s over all raw files."""
    from loader.rules.validate import SQL
    from loader.tables.create_cloudtrail import create_cloudtrail_tables
    from tests.test_persistence import enrichment_flags

    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=1600, days=4, accounts=1))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "new_region_quickly.sql").write_text(SHORT_PROFILE)
    bundled = ["alerts/root_account_usage.sql", "alerts/tor_exit_node_activity.sql",
               "alerts/unauthorized_api_calls_burst.sql", "profiles/new_source_ip.sql"]  # fmt: skip
    for name in bundled:
        shutil.copy(SQL / name, rules)
    flags = ["--rules", str(rules), *enrichment_flags(logs)]
    output = tmp_path / "detect.jsonl"
    detect = ["detect", "--source", str(logs / "AWSLogs"), "--database", "histref"]
    assert main([*detect, "--output", str(output), *flags]) == 0
    expected = sorted(json.loads(line)["alert_id"] for line in output.open())
    assert any(json.loads(line)["rule"] == "new_region_quickly" for line in output.open())

    days = [d.replace("-", "/") for d in summary.days]
    files = sorted(p.relative_to(logs) for p in (logs / "AWSLogs").rglob("*.json.gz"))
    later = [p for p in files if any(f"/{d}/" in str(p) for d in days[2:])]
    last = [p for p in later if f"/{days[-1]}/" in str(p)]
    held = tmp_path / "held"
    _move(later, logs, held)  # materialize sees only the first half
    try:
        create_cloudtrail_tables(spark, str(logs / "AWSLogs"), "hist")
        assert main(["materialize", "--database", "hist"]) == 0
        materialized, partitions = spark.sql(
            "SELECT count(*), count(DISTINCT account, region, dt) FROM hist.cloudtrail_parquet"
        ).first()
        _move([p for p in later if p not in last], held, logs)  # the second half lands, raw
        run = [
            "run", "--source", str(logs / "AWSLogs"), "--once", "--database", "hist",
            "--checkpoint", str(tmp_path / "checkpoint"), *flags,
            "--history-table", "hist.cloudtrail_parquet",
        ]  # fmt: skip
        capsys.readouterr()
        assert main(run) == 0
        first = capsys.readouterr().out
        assert f"history: {partitions} day(s) from hist.cloudtrail_parquet" in first
        raw = sum(
            len(json.loads(gzip.decompress((logs / p).read_bytes()))["Records"])
            for p in later if p not in last and "_CloudTrail_" in p.name
        )  # fmt: skip
        assert f"batch 0: events {materialized + raw:,}, " in first, first
        _move(last, held, logs)  # the attack day lands
    finally:
        _move([p for p in later if (held / p).exists()], held, logs)
    assert main(run) == 0
    second = capsys.readouterr().out
    assert "batch 0:" not in second and "batch 1: events " in second
    spark.catalog.refreshTable("hist.alerts")
    found = sorted(r.alert_id for r in spark.sql("SELECT alert_id FROM hist.alerts").collect())
    assert found == expected  # none twice, none missed

    # a restart replays the same choice; another table is refused for this checkpoint
    assert main([*run[:-1], "other.cloudtrail_parquet"]) == 1
    assert "replayed its history from hist.cloudtrail_parquet" in capsys.readouterr().err
