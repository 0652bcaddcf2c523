"""s3:// sources: boto3 lists the objects and reads them for the content check (a moto server
on 127.0.0.1 over HTTP); a Spark without an S3 filesystem gets a clear error, not a trace."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from loader.errors import LoaderError
from loader.sources.layout import place
from loader.sources.listing import list_files
from loader.tables.filecheck import LOADED, QUARANTINED, SKIPPED, check_path

ACCOUNT = "210987654321"
ORG = "o-zz11yy22xx"
DAYS = ("01", "02")
BASE = f"logs/AWSLogs/{ORG}/{ACCOUNT}/CloudTrail/eu-west-1/2024/02"


@pytest.fixture(scope="module")
def bucket(moto_server):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="trail-bucket")
    good = gzip.compress(json.dumps({"Records": [{"eventID": "e1"}] * 3}).encode())
    keys = [f"{BASE}/{d}/{ACCOUNT}_CloudTrail_eu-west-1_202402{d}T0000Z_a.json.gz" for d in DAYS]
    for key in keys:
        s3.put_object(Bucket="trail-bucket", Key=key, Body=good)
    s3.put_object(Bucket="trail-bucket", Key=f"{BASE}/02/broken.json.gz", Body=b"\x1f\x8bjunk")
    digest = f"logs/AWSLogs/{ORG}/{ACCOUNT}/CloudTrail-Digest/eu-west-1/2024/02/01/d.json.gz"
    s3.put_object(Bucket="trail-bucket", Key=digest, Body=gzip.compress(b'{"logFiles": []}'))
    # more objects than one list page holds, to prove pagination
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(Bucket="trail-bucket", Key=f"other/o{i:04d}", Body=b"x"),
                range(1005),
            )
        )
    return "s3://trail-bucket"


def test_listing_pages_through_s3_and_places_org_trail_keys(bucket):
    files = list(list_files(f"{bucket}/logs/"))
    assert len(files) == 4
    placed = [place(f.path) for f in files]
    kinds = sorted(p.kind for p in placed if p)
    assert kinds == ["cloudtrail", "cloudtrail", "cloudtrail", "digest"]
    day = next(p for p in placed if p and p.kind == "cloudtrail")
    assert day.org_id == ORG and day.account == ACCOUNT
    assert day.directory.startswith(f"s3://trail-bucket/{BASE}/")
    assert sum(1 for _ in list_files(bucket)) == 1009


def test_content_check_reads_objects_with_boto3(bucket):
    gone = check_path(f"{bucket}/{BASE}/01/vanished.json.gz")
    assert gone.status == QUARANTINED and "cannot read" in gone.reason
    key = f"{BASE}/01/{ACCOUNT}_CloudTrail_eu-west-1_20240201T0000Z_a.json.gz"
    assert check_path(f"{bucket}/{key}").status == LOADED
    assert check_path(f"{bucket}/{key}").events == 3
    broken = check_path(f"{bucket}/{BASE}/02/broken.json.gz")
    assert broken.status == QUARANTINED and "gzip" in broken.reason
    digest = f"{bucket}/logs/AWSLogs/{ORG}/{ACCOUNT}/CloudTrail-Digest/eu-west-1/2024/02/01/"
    assert check_path(digest + "d.json.gz").status == SKIPPED


@pytest.mark.spark
def test_spark_without_s3_filesystem_gets_a_clear_error(spark, bucket):
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    with pytest.raises(LoaderError, match="no filesystem for s3:// locations"):
        create_cloudtrail_tables(spark, f"{bucket}/logs", "from_s3")
