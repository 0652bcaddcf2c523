"""Fast tier: deciding from a file's bytes whether it is loadable CloudTrail."""

from __future__ import annotations

import gzip
import json

import pytest

from loader.tables.filecheck import (
    LOADED,
    PARTIAL,
    QUARANTINED,
    SKIPPED,
    check_bytes,
    check_path,
)
from tests.corpus import corpus_cloudtrail_files, count_with_json


def gz(obj) -> bytes:
    # mtime=0: the same bytes in every process, so parallel workers collect the same test ids
    data = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    return gzip.compress(data, mtime=0)


def test_events_and_insights_are_counted():
    records = [{"eventName": "A"}, {"eventName": "B"}, {"eventType": "AwsCloudTrailInsight"}]
    result = check_bytes(gz({"Records": records}))
    assert (result.status, result.events, result.insight_events) == (LOADED, 2, 1)


def test_plain_json_and_empty_records():
    assert check_bytes(b'{"Records": []}').status == LOADED


@pytest.mark.parametrize(
    "data, reason",
    [
        (gz({"Records": [{"a": 1}]})[:20], "truncated gzip"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"not deflate data at all", "corrupt gzip data"),
        (gz(b'{"Records": [{"a": 1},]}'), "invalid JSON: Expecting value at line 1 column 23"),
        (gz(b'{"a": 1}\n{"a": 2}'), "several JSON documents"),
        (gz([{"eventName": "A"}]), "a bare JSON array"),
        (gz({"foo": 1}), "no 'Records' array, not a CloudTrail log file (top-level keys: foo)"),
        (gz({"Records": {"a": 1}}), "'Records' is a JSON dict, not an array"),
        (
            gz({"Records": [1]}),
            "left out 1 of 1 elements, not event objects: Records[0] (a number)",
        ),
        (gz(b"\xff\xfe{}"), "not UTF-8 text"),
        (b"", "empty file"),
    ],
)
def test_bad_content_is_quarantined_with_a_reason(data, reason):
    result = check_bytes(data)
    assert result.status == QUARANTINED
    assert reason in result.reason


def test_a_deeply_nested_document_is_quarantined_not_a_crash():
    deep = b'{"Records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    result = check_bytes(gz(deep))
    assert result.status == QUARANTINED
    assert result.reason.startswith("JSON nested too deeply")


def test_plain_json_named_gz_is_quarantined_by_its_name(tmp_path):
    path = tmp_path / "123456789012_CloudTrail_us-east-1_x.json.gz"
    path.write_bytes(json.dumps({"Records": [{"eventName": "A"}]}).encode())
    result = check_path(str(path))
    assert result.status == QUARANTINED
    assert result.reason.startswith("named .gz but not gzip-compressed")
    plain = tmp_path / "123456789012_CloudTrail_us-east-1_x.json"
    plain.write_bytes(path.read_bytes())
    assert check_path(str(plain)).status == LOADED  # the same bytes, named as they are


def test_elements_that_are_not_events_are_left_out_one_by_one():
    records = [1, "x", None, {"eventName": "A"}, [], True, {"eventType": "AwsCloudTrailInsight"}]
    result = check_bytes(gz({"Records": records}))
    assert (result.status, result.events, result.insight_events) == (PARTIAL, 1, 1)
    assert result.reason == (
        "its 2 event(s) loaded; left out 5 of 7 elements, not event objects: Records[0] "
        "(a number), Records[1] (a string), Records[2] (null), Records[4] (an array), "
        "Records[5] (a boolean)"
    )
    many = check_bytes(gz({"Records": [{"eventName": "A"}] + [0] * 25}))
    assert many.reason.endswith("Records[10] (a number) and 15 more")


def test_digest_is_skipped():
    result = check_bytes(gz({"digestStartTime": "x", "logFiles": []}))
    assert result.status == SKIPPED and result.events == 0


def test_unreadable_path(tmp_path):
    result = check_path(str(tmp_path / "missing.json.gz"))
    assert result.status == QUARANTINED and result.reason.startswith("cannot read")


def test_every_corpus_file_agrees_with_the_json_module():
    for path in corpus_cloudtrail_files():
        data = path.read_bytes()
        result = check_bytes(data)
        expected = count_with_json(data)
        if "digest" in path.parts:
            assert result.status == SKIPPED, path
        elif expected is None:
            assert result.status == QUARANTINED, path
            assert path.name == "SerializerTestFileBadJsonFormat.json"
        else:
            assert (result.status, result.events, result.insight_events) == (LOADED, *expected), (
                path
            )
