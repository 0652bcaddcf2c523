"""`discover` against a moto server on 127.0.0.1: trails of two regions writing to one bucket
are one location; another bucket/prefix is another."""

from __future__ import annotations

import pytest

from loader.cli import main
from loader.sources.discover import discover


@pytest.fixture
def trails(moto_server):
    import boto3

    s3 = boto3.client("s3")
    for bucket in ("org-trail-logs", "audit-logs"):
        s3.create_bucket(Bucket=bucket)
    east = boto3.client("cloudtrail", region_name="us-east-1")
    west = boto3.client("cloudtrail", region_name="eu-west-1")
    east.create_trail(Name="main", S3BucketName="org-trail-logs", IsMultiRegionTrail=True)
    west.create_trail(Name="eu-copy", S3BucketName="org-trail-logs")
    west.create_trail(Name="audit", S3BucketName="audit-logs", S3KeyPrefix="ct/")
    east.create_trail(
        Name="org", S3BucketName="org-trail-logs", IsMultiRegionTrail=True,
        IsOrganizationTrail=True,
    )  # fmt: skip
    yield
    east.delete_trail(Name="org")
    east.delete_trail(Name="main")
    west.delete_trail(Name="eu-copy")
    west.delete_trail(Name="audit")


def test_trails_of_two_regions_into_one_bucket_are_one_location(trails):
    found = discover(["us-east-1", "eu-west-1", "ap-southeast-2"])
    assert [loc.url for loc in found.locations] == [
        "s3://audit-logs/ct/AWSLogs", "s3://org-trail-logs/AWSLogs",
    ]  # fmt: skip
    shared = found.locations[1]
    assert {t.rsplit("/", 1)[-1] for t in shared.trails} == {"main", "eu-copy", "org"}
    assert shared.organization
    assert shared.home_regions == {"us-east-1", "eu-west-1"}
    assert found.problems == []


def test_discover_asks_every_enabled_region_by_default(trails, capsys):
    assert main(["discover"]) == 0
    out = capsys.readouterr().out
    regions = int(out.split("regions asked: ", 1)[1].split()[0])
    assert regions > 10  # every region moto reports as enabled
    assert out.count("| s3://org-trail-logs/AWSLogs |") == 1
    assert "| s3://audit-logs/ct/AWSLogs | audit | eu-west-1 | no |" in out
    assert (
        "| s3://org-trail-logs/AWSLogs | eu-copy, main, org | eu-west-1, us-east-1 | yes |" in out
    )


@pytest.mark.spark
def test_discover_syncs_and_creates_the_tables_of_every_location(trails, spark, tmp_path, capsys):
    """`--sync-to DIR --create`: each location copied, then the tables made over the copies
    (this Spark has no S3 filesystem); a location without logs yet makes nothing."""
    import boto3

    from loader.sample.generate import SampleSpec, write_sample

    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=300, days=2, events_per_file=100))
    s3 = boto3.client("s3")
    uploaded = []
    for path in sorted((logs / "AWSLogs").rglob("*_CloudTrail_*.json.gz")):
        key = str(path.relative_to(logs))
        s3.upload_file(str(path), "org-trail-logs", key)
        uploaded.append(key)
    try:
        copies = tmp_path / "copies"
        flags = ["--regions", "us-east-1", "eu-west-1", "--sync-to", str(copies), "--create"]
        assert main(["discover", *flags, "--database", "discovered"]) == 0
        out = capsys.readouterr().out
        assert f"log objects: {len(uploaded)} listed, {len(uploaded)} copied" in out
        assert f"{copies}/ct/AWSLogs: no log objects copied, no tables to make" in out
        events = spark.sql("SELECT count(*) AS n FROM discovered.cloudtrail").first().n
        assert events == summary.events
        assert main(["discover", *flags, "--database", "discovered"]) == 0  # a rerun: nothing new
        assert f"{len(uploaded)} already up to date" in capsys.readouterr().out
    finally:
        for key in uploaded:
            s3.delete_object(Bucket="org-trail-logs", Key=key)
