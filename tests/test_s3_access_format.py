"""The S3 server access log line format (no JVM): every corpus line of every format generation
parses into the right fields; garbage does not; the SQL the tables use is well formed."""

from __future__ import annotations

import pytest
import sqlglot

from loader.tables.s3_access_ddl import (
    FIELDS,
    RAW_COLUMNS,
    create_raw_table,
    parse_line,
    typed_view_query,
    unparsed_view_query,
)
from tests.corpus import corpus_dir

OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"


def _lines(name: str) -> list[str]:
    path = corpus_dir("s3-access-logs") / name
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_every_corpus_line_parses():
    folder = corpus_dir("s3-access-logs")
    files = sorted(folder.glob("*.log"))
    assert len(files) == 6
    for path in files:
        for number, line in enumerate(_lines(path.name), start=1):
            fields = parse_line(line)
            assert fields is not None, f"{path.name}:{number}"
            assert fields["bucket_owner"] and fields["request_time"], f"{path.name}:{number}"
            assert (fields["extra"] or "").strip() == "", f"{path.name}:{number}: {fields['extra']}"


def test_the_18_field_format():
    first = parse_line(_lines("awsdocs-amazon-s3-developer-guide_LogFormat_2017-12-07.log")[0])
    assert first == {
        "bucket_owner": OWNER, "bucket": "mybucket", "request_time": "06/Feb/2014:00:00:38 +0000",
        "remote_ip": "192.0.2.3", "requester": OWNER, "request_id": "3E57427F3EXAMPLE",
        "operation": "REST.GET.VERSIONING", "key": "-",
        "request_uri": '"GET /mybucket?versioning HTTP/1.1"', "http_status": "200",
        "error_code": "-", "bytes_sent": "113", "object_size": "-", "total_time": "7",
        "turn_around_time": "-", "referrer": '"-"', "user_agent": '"S3Console/0.4"',
        "version_id": "-", **dict.fromkeys(RAW_COLUMNS[18:26]), "extra": "",
    }  # fmt: skip


def test_the_24_field_format():
    third = parse_line(_lines("awsdocs-amazon-s3-developer-guide_LogFormat_2019-06-07.log")[2])
    assert third is not None
    assert (third["operation"], third["http_status"], third["error_code"]) == (
        "REST.GET.BUCKETPOLICY", "404", "NoSuchBucketPolicy",
    )  # fmt: skip
    assert third["signature_version"] == "SigV2"
    assert third["cipher_suite"] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert third["authentication_type"] == "AuthHeader"
    assert third["host_header"] == "awsexamplebucket.s3.amazonaws.com"
    assert third["tls_version"] == "TLSV1.1"
    assert third["access_point_arn"] is None and third["acl_required"] is None
    attacker = parse_line(_lines("panther_scenario_attacker_s3_access.log")[0])
    assert attacker is not None
    assert attacker["requester"] == "arn:aws:iam::493859302102:user/tracy_stone"
    assert (attacker["key"], attacker["bytes_sent"], attacker["object_size"]) == (
        "id-01.pdf", "-", "4406583",
    )  # fmt: skip
    assert (attacker["total_time"], attacker["turn_around_time"]) == ("41754", "28")


def test_the_26_field_format_and_a_trailing_space():
    lines = _lines("awsdocs-amazon-s3-userguide_LogFormat_2022-11-16.log")
    first = parse_line(lines[0])
    assert first is not None
    assert first["access_point_arn"] == "arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP"
    assert first["acl_required"] == "Yes"
    assert first["tls_version"] == "TLSV1.2"
    second = parse_line(lines[1])
    assert second is not None and (second["access_point_arn"], second["acl_required"]) == ("-", "-")
    assert any(line.endswith(" ") for line in lines)  # the corpus's quirk
    assert all(parse_line(line)["extra"].strip() == "" for line in lines)


def test_fields_aws_appends_later_land_in_extra():
    line = _lines("awsdocs-amazon-s3-userguide_LogFormat_2022-11-16.log")[0]
    fields = parse_line(line.rstrip() + " new-field-27 new-field-28")
    assert fields is not None and fields["acl_required"] == "Yes"
    assert fields["extra"] == " new-field-27 new-field-28"


@pytest.mark.parametrize(
    "garbage",
    ["", "not a log line", "<html><body>Access Denied</body></html>",
     f"{OWNER} mybucket [06/Feb/2014:00:00:38 +0000] 192.0.2.3 truncated"],
)  # fmt: skip
def test_garbage_does_not_parse(garbage):
    assert parse_line(garbage) is None


def test_the_sql_parses():
    for sql in (
        typed_view_query("security.s3_access_logs_raw"),
        unparsed_view_query("security.s3_access_logs_lines"),
    ):
        sqlglot.parse_one(sql, read="spark")
    ddl = create_raw_table("security", "s3_access_logs_raw", "s3://logs/s3/")
    assert "org.apache.hadoop.hive.serde2.RegexSerDe" in ddl
    assert ddl.count(" STRING") == len(FIELDS) + 1


def test_every_column_is_documented_with_its_type():
    import re

    from tests.conftest import REPO

    readme = (REPO / "docs" / "s3-access-logs.md").read_text()
    section = readme.split("| `security.s3_access_logs` column |", 1)[1].split("\n\n", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", section, re.M))
    assert documented == {**{f.name: f.kind for f in FIELDS}, "extra": "string"}
