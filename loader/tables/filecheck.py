"""Decide, from its bytes, whether a log file is loadable CloudTrail, and if not, why.

This runs on executors (one task per group of files) before a file's partition is registered,
so a bad file is reported with its path and a reason a person can act on, instead of becoming
an empty or failing query later. Pure Python: tested without Spark.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass

LOADED = "loaded"
PARTIAL = "partial"  # its events load; some elements of its Records are not events
QUARANTINED = "quarantined"
SKIPPED = "skipped"
SHOWN_ELEMENTS = 10  # bad elements named in a reason; the others counted

INSIGHT_EVENT_TYPE = "AwsCloudTrailInsight"
DIGEST_KEYS = ("digestStartTime", "digestEndTime", "digestS3Object", "logFiles")


@dataclass(frozen=True)
class FileCheck:
    """Outcome for one file: status, number of events and Insights events, and the reason."""

    status: str
    events: int = 0
    insight_events: int = 0
    reason: str | None = None
    newest_event: str | None = None  # the greatest eventTime (ISO text) of its events


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def check_bytes(data: bytes, name: str = "") -> FileCheck:
    """Classify the content of one CloudTrail log file (gzip or plain JSON); ``name``, the
    file's name or path, says how Spark will read it."""
    if name.endswith(".gz") and data[:2] != b"\x1f\x8b":
        # Spark picks the codec by the name: gzip would fail on it and the table would drop it
        return _bad("named .gz but not gzip-compressed (Spark cannot read it so): gzip it, or "
                    "name it .json")  # fmt: skip
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError:
            return _bad("truncated gzip: the compressed stream ends early (incomplete upload?)")
        except (OSError, zlib.error) as exc:
            return _bad(f"corrupt gzip data: {exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(f"not UTF-8 text: invalid byte at offset {exc.start}")
    if not text.strip():
        return _bad("empty file")
    try:
        document = json.loads(text)
    except RecursionError:
        return _bad("JSON nested too deeply to be a CloudTrail log file (thousands of levels)")
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg == "Extra data":
            hint = ' (several JSON documents? a CloudTrail file holds one {"Records": [...]})'
        return _bad(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}")
    return check_document(document)


def check_document(document: object) -> FileCheck:
    """Classify an already parsed JSON document."""
    if isinstance(document, list):
        return _bad('a bare JSON array, not a CloudTrail log file ({"Records": [...]})')
    if not isinstance(document, dict):
        return _bad(f"JSON {type(document).__name__}, not a CloudTrail log file")
    if "Records" not in document:
        if any(key in document for key in DIGEST_KEYS):
            return FileCheck(SKIPPED, reason="CloudTrail digest file (no events)")
        keys = ", ".join(sorted(document)[:8]) or "none"
        return _bad(f"no 'Records' array, not a CloudTrail log file (top-level keys: {keys})")
    records = document["Records"]
    if not isinstance(records, list):
        return _bad(f"'Records' is a JSON {type(records).__name__}, not an array")
    events = [r for r in records if isinstance(r, dict)]
    insights = sum(1 for r in events if r.get("eventType") == INSIGHT_EVENT_TYPE)
    times = [
        r["eventTime"] for r in events
        if r.get("eventType") != INSIGHT_EVENT_TYPE and isinstance(r.get("eventTime"), str)
        and _ISO_TIME.match(r["eventTime"])
    ]  # fmt: skip
    counts = {"events": len(events) - insights, "insight_events": insights,
              "newest_event": max(times) if times else None}  # fmt: skip
    junk = [(i, r) for i, r in enumerate(records) if not isinstance(r, dict)]
    if not junk:
        return FileCheck(LOADED, **counts)
    named = ", ".join(f"Records[{i}] ({_json_kind(r)})" for i, r in junk[:SHOWN_ELEMENTS])
    more = f" and {len(junk) - SHOWN_ELEMENTS} more" if len(junk) > SHOWN_ELEMENTS else ""
    reason = f"left out {len(junk)} of {len(records)} elements, not event objects: {named}{more}"
    if not events:
        return _bad(reason)
    return FileCheck(PARTIAL, reason=f"its {len(events)} event(s) loaded; {reason}", **counts)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array"}  # fmt: skip
    return kinds.get(type(value), type(value).__name__)


def _bad(reason: str) -> FileCheck:
    return FileCheck(QUARANTINED, reason=reason)


def read_file_bytes(path: str) -> bytes:
    """Bytes of a local file or an s3:// object (boto3: no S3 filesystem needed on executors)."""
    from loader.s3util import is_s3, read_s3_bytes

    if is_s3(path):
        return read_s3_bytes(path)
    with open(path, "rb") as handle:
        return handle.read()


def check_path(path: str) -> FileCheck:
    """Read and classify one file; an unreadable file is quarantined with the OS error."""
    try:
        data = read_file_bytes(path)
    except OSError as exc:
        return _bad(f"cannot read: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - S3 and other readers: report, never crash the job
        return _bad(f"cannot read: {exc}")
    return check_bytes(data, path)
