"""create-hive-table on small handmade logs: bad neighbours, schema drift, reruns, new days."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from loader.tables.create_cloudtrail import create_cloudtrail_tables

pytestmark = pytest.mark.spark
ACCOUNT = "123456789012"


def day_dir(root: Path, day: str, region: str = "us-east-1") -> Path:
    y, m, d = day.split("-")
    folder = root / "AWSLogs" / ACCOUNT / "CloudTrail" / region / y / m / d
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_log(folder: Path, name: str, records: list[dict]) -> Path:
    path = folder / f"{ACCOUNT}_CloudTrail_us-east-1_{name}.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return path


def event(n: int, **fields) -> dict:
    base = {
        "eventVersion": "1.08",
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "eventID": f"id-{n}",
        "sourceIPAddress": "81.2.69.142",
        "readOnly": True,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/u{n}"},
    }
    base.update(fields)
    return base


def test_bad_files_are_quarantined_and_neighbours_load(spark, tmp_path):
    folder = day_dir(tmp_path, "2024-05-01")
    write_log(folder, "good", [event(1), event(2)])
    good = gzip.compress(json.dumps({"Records": [event(3)]}).encode())
    (folder / "truncated.json.gz").write_bytes(good[: len(good) // 2])
    (folder / "invalid.json.gz").write_bytes(gzip.compress(b'{"Records": [{"a": 1},'))
    (folder / "other.json.gz").write_bytes(gzip.compress(b'{"hello": "world"}'))
    (folder / "lines.json.gz").write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    misplaced = tmp_path / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2024" / "x.json.gz"
    misplaced.write_bytes(good)
    (tmp_path / "README.txt").write_text("not a log")

    report = create_cloudtrail_tables(spark, str(tmp_path), "bad_input")

    assert spark.table("bad_input.cloudtrail").count() == 2
    reasons = {Path(p).name: r for p, r in report.quarantined_new}
    assert reasons["truncated.json.gz"].startswith("truncated gzip")
    assert reasons["invalid.json.gz"].startswith("invalid JSON:")
    assert reasons["other.json.gz"].startswith("no 'Records' array")
    assert "several JSON documents" in reasons["lines.json.gz"]
    assert reasons["x.json.gz"].startswith("not in the CloudTrail layout")
    assert len(reasons) == 5
    assert report.ignored == 1
    quarantine = spark.table("bad_input.cloudtrail_quarantine").collect()
    assert {Path(r["path"]).name: r["reason"] for r in quarantine} == reasons


def test_type_changes_and_new_fields_lose_nothing(spark, tmp_path):
    folder = day_dir(tmp_path, "2024-05-02")
    write_log(folder, "typed", [event(1, readOnly=True, requestParameters={"bucketName": "b"})])
    write_log(
        folder,
        "drifted",
        [
            event(
                2,
                readOnly="false",
                requestParameters='{"bucketName": "c"}',
                eventTime="2024-05-02 10:00:00.123",
                brandNewField={"nested": [1, 2, 3]},
                userIdentity={"type": "IAMUser", "arn": "a", "newIdentityField": "x"},
            ),
            event(3, userIdentity=None, readOnly=1),
        ],
    )
    create_cloudtrail_tables(spark, str(tmp_path), "drift")
    rows = {
        r["eventID"]: r
        for r in spark.sql(
            "SELECT eventID, readOnly, requestParameters, eventTime, userIdentity, raw_json, "
            "get_json_object(raw_json, '$.brandNewField.nested[2]') AS newest, "
            "get_json_object(raw_json, '$.userIdentity.newIdentityField') AS new_identity "
            "FROM drift.cloudtrail"
        ).collect()
    }
    assert rows["id-1"]["readOnly"] is True
    assert rows["id-2"]["readOnly"] is False
    assert json.loads(rows["id-1"]["requestParameters"]) == {"bucketName": "b"}
    assert json.loads(rows["id-2"]["requestParameters"]) == {"bucketName": "c"}
    assert rows["id-2"]["eventTime"].isoformat() == "2024-05-02T10:00:00.123000"
    assert rows["id-2"]["newest"] == "3"
    assert rows["id-2"]["new_identity"] == "x"
    assert rows["id-3"]["userIdentity"] is None
    assert json.loads(rows["id-3"]["raw_json"])["readOnly"] == 1


def test_rerun_changes_nothing_and_new_day_is_registered(spark, tmp_path):
    write_log(day_dir(tmp_path, "2024-05-03"), "a", [event(1), event(2)])
    write_log(day_dir(tmp_path, "2024-05-03", "eu-west-1"), "b", [event(3)])
    first = create_cloudtrail_tables(spark, str(tmp_path), "rerun")
    assert len(first.partitions_added) == 2
    assert spark.table("rerun.cloudtrail").count() == 3

    second = create_cloudtrail_tables(spark, str(tmp_path), "rerun")
    assert second.partitions_added == []
    assert second.files_new == 0
    assert spark.table("rerun.cloudtrail").count() == 3
    assert spark.table("rerun.cloudtrail_files").count() == 2

    write_log(day_dir(tmp_path, "2024-05-04"), "c", [event(4), event(5), event(6)])
    third = create_cloudtrail_tables(spark, str(tmp_path), "rerun")
    assert third.partitions_added == [("cloudtrail_raw", ACCOUNT, "us-east-1", "2024-05-04")]
    assert third.files_new == 1 and third.events_new == 3
    assert spark.table("rerun.cloudtrail").count() == 6
    by_day = dict(spark.sql("SELECT dt, count(*) FROM rerun.cloudtrail GROUP BY dt").collect())
    assert by_day == {"2024-05-03": 3, "2024-05-04": 3}


def test_source_at_any_level(spark, tmp_path):
    folder = day_dir(tmp_path, "2024-05-05")
    write_log(folder, "a", [event(1)])
    for level, db in [(folder, "level_day"), (folder.parents[3], "level_region")]:
        report = create_cloudtrail_tables(spark, str(level), db)
        assert report.partitions_added == [("cloudtrail_raw", ACCOUNT, "us-east-1", "2024-05-05")]
        assert spark.table(f"{db}.cloudtrail").count() == 1


def test_two_folders_for_one_partition_are_reported(spark, tmp_path):
    write_log(day_dir(tmp_path / "trail-a", "2024-05-06"), "a", [event(1)])
    write_log(day_dir(tmp_path / "trail-b", "2024-05-06"), "b", [event(2)])
    report = create_cloudtrail_tables(spark, str(tmp_path), "two_trails")
    assert len(report.quarantined_new) == 1
    path, reason = report.quarantined_new[0]
    assert "trail-b" in path and "already the folder" in reason and "trail-a" in reason


def test_fixed_file_leaves_quarantine_on_next_run(spark, tmp_path):
    folder = day_dir(tmp_path, "2024-05-07")
    write_log(folder, "good", [event(1)])
    broken = folder / f"{ACCOUNT}_CloudTrail_us-east-1_late.json.gz"
    broken.write_bytes(gzip.compress(b'{"Records": [{"eventID": "x"'))
    first = create_cloudtrail_tables(spark, str(tmp_path), "refixed")
    assert [Path(p).name for p, _ in first.quarantined_new] == [broken.name]
    assert spark.table("refixed.cloudtrail_quarantine").count() == 1

    write_log(folder, "late", [event(2), event(3)])  # the complete upload replaces it
    second = create_cloudtrail_tables(spark, str(tmp_path), "refixed")
    assert second.files_new == 1 and second.events_new == 2 and second.quarantined_new == []
    assert spark.table("refixed.cloudtrail_quarantine").count() == 0
    assert spark.table("refixed.cloudtrail").count() == 3


def test_hostile_files_are_loaded_or_quarantined_and_never_stop_the_load(spark, tmp_path):
    folder = day_dir(tmp_path, "2024-05-01")
    write_log(folder, "good", [event(1), event(2)])
    deep = b'{"Records": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    (folder / f"{ACCOUNT}_CloudTrail_us-east-1_deep.json.gz").write_bytes(gzip.compress(deep))
    plain = json.dumps({"Records": [event(3)]}).encode()  # not gzipped, named .gz
    (folder / f"{ACCOUNT}_CloudTrail_us-east-1_plain.json.gz").write_bytes(plain)
    junk = [1, "x", None, event(4), []]
    write_log(folder, "junk", junk)

    report = create_cloudtrail_tables(spark, str(tmp_path), "hostile")

    rows = spark.table("hostile.cloudtrail").select("eventID", "source_file").collect()
    # an independent count: the objects of the files Python's json module reads as CloudTrail
    assert sorted(r.eventID for r in rows) == ["id-1", "id-2", "id-4"]  # no row of NULLs
    reasons = {Path(p).name.split("_")[-1]: r for p, r in report.quarantined_new}
    assert reasons["deep.json.gz"].startswith("JSON nested too deeply")
    assert reasons["plain.json.gz"].startswith("named .gz but not gzip-compressed")
    assert reasons["junk.json.gz"] == (
        "its 1 event(s) loaded; left out 4 of 5 elements, not event objects: Records[0] "
        "(a number), Records[1] (a string), Records[2] (null), Records[4] (an array)"
    )
    assert report.events_new == 3
    quarantine = spark.table("hostile.cloudtrail_quarantine").collect()
    assert {Path(r["path"]).name.split("_")[-1] for r in quarantine} == set(reasons)
