"""`create-hive-table --kind s3-access-logs` over the corpus's access log lines, laid out as AWS
writes them (date-partitioned and flat): typed values, partitions, and unparsed lines kept
with their file and reason."""

from __future__ import annotations

import datetime as dt

import pytest

from loader.cli import main
from tests.corpus import corpus_dir

pytestmark = pytest.mark.spark
GARBAGE = "<Error><Code>AccessDenied</Code></Error>"


def _lines(name: str) -> list[str]:
    path = corpus_dir("s3-access-logs") / name
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_partitioned_and_flat_layouts(spark, tmp_path, capsys):
    v2019 = _lines("awsdocs-amazon-s3-developer-guide_LogFormat_2019-06-07.log")
    v2022 = _lines("awsdocs-amazon-s3-userguide_LogFormat_2022-11-16.log")
    v2017 = _lines("awsdocs-amazon-s3-developer-guide_LogFormat_2017-12-07.log")
    root = tmp_path / "partitioned" / "logs"
    day1 = root / "123456789012/us-west-1/DOC-EXAMPLE-BUCKET1/2019/02/06"
    day2 = root / "123456789012/us-west-1/DOC-EXAMPLE-BUCKET1/2019/02/07"
    for folder in (day1, day2):
        folder.mkdir(parents=True)
    (day1 / "2019-02-06-00-00-38-5A1B2C3D4E5F6A7B").write_text("\n".join(v2019 + v2022) + "\n")
    bad_name = "2019-02-07-10-00-00-0A1B2C3D4E5F6A7B"
    (day2 / bad_name).write_text(f"{v2017[0]}\n{GARBAGE}\n")
    (root / "README.txt").write_text("not a log")

    capsys.readouterr()
    create = ["create-hive-table", "--kind", "s3-access-logs", "--source", str(root)]
    assert main([*create, "--database", "s3part"]) == 0
    out = capsys.readouterr().out
    good = len(v2019) + len(v2022) + 1
    assert "date-partitioned layout, 2 partition(s)" in out, out
    assert f"lines: {good} parsed, 1 unparsed (see s3part.s3_access_logs_unparsed)" in out, out
    assert "skipped 1 file(s)" in out

    rows = spark.sql("SELECT * FROM s3part.s3_access_logs WHERE dt = '2019-02-06'").collect()
    assert len(rows) == len(v2019) + len(v2022)
    policy = next(
        r for r in rows if r.operation == "REST.GET.BUCKETPOLICY" and r.tls_version == "TLSV1.1"
    )
    assert policy.request_time == dt.datetime(2019, 2, 6, 0, 0, 38)
    assert (policy.http_status, policy.error_code, policy.bytes_sent) == (
        404,
        "NoSuchBucketPolicy",
        297,
    )
    assert policy.object_size is None and policy.turn_around_time is None  # "-" is NULL
    assert policy.referrer is None and policy.user_agent == "S3Console/0.4"
    assert policy.request_uri == "GET /awsexamplebucket?policy HTTP/1.1"
    assert policy.access_point_arn is None and policy.acl_required is None
    assert (policy.account, policy.region, policy.source_bucket) == (
        "123456789012", "us-west-1", "DOC-EXAMPLE-BUCKET1",
    )  # fmt: skip
    with_arn = [r for r in rows if r.access_point_arn]
    assert [r.acl_required for r in with_arn] == [True]
    assert with_arn[0].access_point_arn.endswith(":accesspoint/example-AP")
    assert {r.acl_required for r in rows if r.tls_version == "TLSV1.2"} >= {False}

    (unparsed,) = spark.sql("SELECT * FROM s3part.s3_access_logs_unparsed").collect()
    assert unparsed.line == GARBAGE and unparsed.file.endswith(bad_name)
    assert unparsed.reason == "fewer than the 18 fields of the oldest format"
    assert unparsed.dt == "2019-02-07"

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "2014-02-06-00-00-38-5A1B2C3D4E5F6A7B").write_text("\n".join(v2017) + "\n")
    assert main([*create[:-1], str(flat), "--database", "s3flat"]) == 0
    assert f"lines: {len(v2017)} parsed, 0 unparsed" in capsys.readouterr().out
    first = spark.sql("SELECT * FROM s3flat.s3_access_logs ORDER BY request_id LIMIT 1").collect()[
        0
    ]
    assert first.bucket == "mybucket" and first.host_id is None and first.extra is None
