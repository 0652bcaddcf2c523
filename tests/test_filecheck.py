"""Fast tier: deciding from a file's bytes whether it is loadable CloudTrail."""

from __future__ import annotations

import gzip
import json

import pytest

from loader.tables.filecheck import LOADED, QUARANTINED, SKIPPED, check_bytes, check_path
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
        (gz({"Records": [1]}), "Records[0] is a JSON int"),
        (gz(b"\xff\xfe{}"), "not UTF-8 text"),
        (b"", "empty file"),
    ],
)
def test_bad_content_is_quarantined_with_a_reason(data, reason):
    result = check_bytes(data)
    assert result.status == QUARANTINED
    assert reason in result.reason


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
