"""`sync` against a moto server on 127.0.0.1: only CloudTrail log objects, exactly the new ones
on a second run, an interrupted copy redone, pagination followed."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from loader.cli import main
from loader.sources.s3sync import sync

BUCKET = "trail-bucket-sync"
DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/31"


def _log(n: int) -> tuple[str, bytes]:
    key = f"{DAY}/111122223333_CloudTrail_us-east-1_20240331T00{n:02d}Z_abc{n}.json.gz"
    body = gzip.compress(json.dumps({"Records": [{"eventID": f"e{n}"}]}).encode(), mtime=0)
    return key, body


@pytest.fixture
def bucket(moto_server):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for n in range(3):
        key, body = _log(n)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    digest = (
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/31/"
        "111122223333_CloudTrail-Digest_us-east-1_x_20240331T0100Z.json.gz"
    )
    s3.put_object(Bucket=BUCKET, Key=digest, Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="AWSLogs/111122223333/CloudTrail/notes.txt", Body=b"x")
    insight = (
        "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/03/31/"
        "111122223333_CloudTrail-Insight_us-east-1_20240331T0100Z_i1.json.gz"
    )
    s3.put_object(Bucket=BUCKET, Key=insight, Body=gzip.compress(b'{"Records": []}'))
    yield s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def _copied(dest) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(folder, name), dest)
        for folder, _, names in os.walk(dest)
        for name in names
    )


def test_sync_copies_only_log_objects_then_only_new_ones(bucket, tmp_path, capsys):
    dest = tmp_path / "logs"
    source = f"s3://{BUCKET}/AWSLogs"
    first = sync(source, str(dest), page_size=2)  # several pages
    assert (first.listed, first.copied, first.up_to_date, first.failed) == (4, 4, 0, [])
    files = _copied(dest)
    assert len(files) == 4 and all(f.startswith("AWSLogs/111122223333/CloudTrail") for f in files)
    assert not any("Digest" in f or f.endswith(".txt") for f in files)
    key, body = _log(0)
    assert (dest / key).read_bytes() == body

    key, body = _log(7)  # a new file lands
    bucket.put_object(Bucket=BUCKET, Key=key, Body=body)
    (dest / _log(1)[0]).unlink()  # and one local copy was lost
    partial = dest / DAY / f".{os.path.basename(_log(2)[0])}.part"
    partial.write_bytes(b"half")  # a sync stopped mid-object left this behind
    second = sync(source, str(dest))
    assert (second.listed, second.copied, second.up_to_date) == (5, 2, 3)
    assert (dest / key).read_bytes() == body
    assert len(_copied(dest)) == 5  # the stale .part is gone
    assert not partial.exists()

    capsys.readouterr()
    assert main(["sync", "--source", source, "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "log objects: 5 listed, 0 copied (0.0 MB), 5 already up to date" in out


def test_sync_names_what_it_cannot_list(moto_server, tmp_path, capsys):
    assert (
        main(["sync", "--source", "s3://no-such-bucket-here/AWSLogs", "--dest", str(tmp_path)]) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("error: s3://no-such-bucket-here/AWSLogs: cannot list S3 objects")
    assert "NoSuchBucket" in err
