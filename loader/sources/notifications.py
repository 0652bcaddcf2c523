"""What an SQS message says about new log objects.

Understood, at any nesting (an SNS envelope around an S3 event, a Lambda batch around either):

- CloudTrail's SNS notification: ``{"s3Bucket": ..., "s3ObjectKey": [...]}``;
- S3 event notifications (``Records[].s3``), raw or in an SNS envelope (``Type: Notification``,
  JSON text in ``Message``); their object keys are URL-encoded (``+`` is a space);
- EventBridge's S3 events (``source: aws.s3``, ``detail-type: Object Created``), keys plain;
- Lambda's SNS and SQS event envelopes (``Records[].Sns`` and ``Records[].body``).

``s3:TestEvent`` and events other than object creation carry no object and are ignored, with
the reason. A part that cannot be used (not JSON, missing keys) is a problem, with the reason
and where in the message it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

# What the runner reads: CloudTrail log files (no digests, no Insights files).
LOG_FILE = re.compile(r"_CloudTrail_[^/]*\.json\.gz$")
MAX_DEPTH = 6


@dataclass(frozen=True, order=True)
class ObjectRef:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class Notice:
    """Objects a message names, in order and once each; what was ignored and what was wrong."""

    objects: list[ObjectRef] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, bucket: Any, key: Any, where: str) -> None:
        if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
            self.problems.append(f"{where}: bucket or key missing or not a string")
            return
        ref = ObjectRef(bucket, key)
        if ref not in self.objects:
            self.objects.append(ref)

    @property
    def log_objects(self) -> list[ObjectRef]:
        return [ref for ref in self.objects if LOG_FILE.search(ref.key)]

    @property
    def other_objects(self) -> list[ObjectRef]:
        return [ref for ref in self.objects if not LOG_FILE.search(ref.key)]


def parse_notification(body: str) -> Notice:
    """Everything one message body says (see the module's docstring)."""
    notice = Notice()
    _walk(body, "body", notice, 0)
    return notice


def _walk(doc: Any, where: str, notice: Notice, depth: int) -> None:
    if depth > MAX_DEPTH:
        notice.problems.append(f"{where}: nested too deeply")
        return
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError as exc:
            snippet = doc.strip()[:40]
            notice.problems.append(f"{where}: not JSON ({exc}): {snippet!r}")
            return
        _walk_parsed(doc, where, notice, depth)
        return
    _walk_parsed(doc, where, notice, depth)


def _walk_parsed(doc: Any, where: str, notice: Notice, depth: int) -> None:
    if not isinstance(doc, dict):
        notice.problems.append(f"{where}: a JSON {type(doc).__name__}, not an object")
        return
    if "s3Bucket" in doc or "s3ObjectKey" in doc:  # CloudTrail's own notification
        keys = doc.get("s3ObjectKey")
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not keys:
            notice.problems.append(f"{where}: CloudTrail notification without s3ObjectKey list")
            return
        for i, key in enumerate(keys):
            notice.add(doc.get("s3Bucket"), key, f"{where}.s3ObjectKey[{i}]")
        return
    if doc.get("Type") == "Notification" or "TopicArn" in doc:  # an SNS envelope
        if "Message" not in doc:
            notice.problems.append(f"{where}: SNS notification without 'Message'")
            return
        _walk(doc["Message"], f"{where}.Message", notice, depth + 1)
        return
    if doc.get("Event") == "s3:TestEvent":
        notice.ignored.append(f"{where}: s3:TestEvent for bucket {doc.get('Bucket')}")
        return
    if isinstance(doc.get("Records"), list):
        if not doc["Records"]:
            notice.ignored.append(f"{where}: no Records")
        for i, record in enumerate(doc["Records"]):
            _walk_record(record, f"{where}.Records[{i}]", notice, depth + 1)
        return
    if doc.get("source") == "aws.s3" and "detail-type" in doc:  # EventBridge
        detail = doc.get("detail") if isinstance(doc.get("detail"), dict) else {}
        if doc["detail-type"] != "Object Created":
            notice.ignored.append(f"{where}: EventBridge {doc['detail-type']!r}")
            return
        bucket, obj = detail.get("bucket") or {}, detail.get("object") or {}
        notice.add(bucket.get("name"), obj.get("key"), f"{where}.detail")
        return
    keys = ", ".join(sorted(doc)[:8]) or "none"
    notice.problems.append(f"{where}: not a CloudTrail or S3 notification (keys: {keys})")


def _walk_record(record: Any, where: str, notice: Notice, depth: int) -> None:
    if not isinstance(record, dict):
        notice.problems.append(f"{where}: not an object")
        return
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:s3":
        name = str(record.get("eventName", ""))
        if not name.startswith("ObjectCreated:"):
            notice.ignored.append(f"{where}: S3 event {name or '(no eventName)'}")
            return
        s3 = record.get("s3") if isinstance(record.get("s3"), dict) else {}
        bucket, obj = s3.get("bucket") or {}, s3.get("object") or {}
        key = obj.get("key")
        notice.add(bucket.get("name"), unquote_plus(key) if isinstance(key, str) else key,
                   f"{where}.s3")  # fmt: skip
    elif source == "aws:sns" and "Sns" in record:  # Lambda's SNS event
        _walk_parsed(record["Sns"], f"{where}.Sns", notice, depth + 1)
    elif source == "aws:sqs" and "body" in record:  # Lambda's SQS event
        _walk(record["body"], f"{where}.body", notice, depth + 1)
    else:
        notice.problems.append(f"{where}: a record from {source or 'an unknown source'}")
