"""The EventBridge events source and the deduplication's decisions, without a JVM."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loader.sources.events import EventInbox, parse_event_message
from loader.stream.dedup import FILED, PENDING, UNKNOWN, SeenKeys, decide, decode, encode
from tests.corpus import corpus_dir

RECORD = {
    "eventVersion": "1.08", "eventID": "3d2c4f1a-0000-4c1e-9f3e-1234567890ab",
    "eventTime": "2026-11-30T10:00:00Z", "eventName": "ConsoleLogin",
    "eventSource": "signin.amazonaws.com", "awsRegion": "us-east-1",
    "recipientAccountId": "111122223333", "eventType": "AwsConsoleSignIn",
}  # fmt: skip


def eventbridge(record: dict, kind: str = "AWS Console Sign In via CloudTrail") -> dict:
    return {
        "version": "0", "id": "6f6a1b52-0000-4a0a-8b3e-2c3d4e5f6a7b", "detail-type": kind,
        "source": "aws.signin", "account": "111122223333", "time": record.get("eventTime"),
        "region": "us-east-1", "resources": [], "detail": record,
    }  # fmt: skip


def test_an_eventbridge_cloudtrail_event_becomes_its_record_placed_by_the_event():
    got = parse_event_message(json.dumps(eventbridge(RECORD)), "m-1", "ct-events")
    assert not isinstance(got, str), got
    assert json.loads(got.record) == RECORD
    assert (got.account, got.region, got.day) == ("111122223333", "us-east-1", "2026-11-30")
    assert got.path == "events-queue://ct-events/m-1"
    # the same event in an SNS envelope
    sns = {"Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:us-east-1:1:t",
           "Message": json.dumps(eventbridge(RECORD))}  # fmt: skip
    assert parse_event_message(json.dumps(sns), "m-2", "q").record == got.record


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<html>gateway timeout</html>", "not JSON"),
        ("[1, 2]", "a JSON list, not an EventBridge event"),
        (json.dumps(eventbridge(RECORD, "EC2 Instance State-change Notification")),
         "not a CloudTrail event: detail-type 'EC2 Instance State-change Notification'"),
        (json.dumps({**eventbridge(RECORD), "detail": "text"}), "without a detail object"),
        (json.dumps(eventbridge({k: v for k, v in RECORD.items() if k != "eventID"})),
         "the CloudTrail record has no eventID"),
        (json.dumps(eventbridge({**RECORD, "eventTime": "yesterday"})),
         "eventTime 'yesterday' is not an ISO 8601 time"),
        (json.dumps({"s3Bucket": "b", "s3ObjectKey": ["k"]}), "give this queue to --sqs-queue-url"),
        (json.dumps({"hello": 1}), "not an EventBridge event (no detail-type; keys: hello)"),
    ],
)  # fmt: skip
def test_what_is_not_a_cloudtrail_event_gets_a_reason(body, reason):
    got = parse_event_message(body, "m", "q")
    assert isinstance(got, str) and reason in got, got


def test_the_corpus_eventbridge_s3_events_are_not_cloudtrail_events():
    folder = corpus_dir("notifications") / "cloudtrail-rs"
    for path in sorted(folder.glob("eventbridge-*.json")):
        got = parse_event_message(path.read_text(), "m", "q")
        assert isinstance(got, str) and "not a CloudTrail event" in got, (path, got)


def test_the_inbox_keeps_entries_until_committed_and_records_rejections(tmp_path):
    inbox = EventInbox(str(tmp_path / "events"))
    event = parse_event_message(json.dumps(eventbridge(RECORD)), "m-1", "q")
    assert inbox.add([event], ["h-1"], ["m-1"]).number == 1
    assert inbox.add([event, event], ["h-2", "h-3"], ["m-2", "m-3"]).number == 2
    inbox.renew(2, {"m-3": "h-3b"})  # m-3 received again while its batch runs
    assert EventInbox(inbox.root).pending == {"m-1": 1, "m-2": 2, "m-3": 2}
    assert EventInbox(inbox.root).entry(2).events == [event, event]  # durable, read back
    deleted: list[str] = []
    inbox.commit(1, deleted.extend)
    assert deleted == ["h-1"] and inbox.numbers() == [2] and inbox.last == 2
    inbox.commit(2, deleted.extend)
    assert deleted == ["h-1", "h-2", "h-3b"] and inbox.numbers() == [] and inbox.last == 2
    assert inbox.pending == {}
    inbox.reject("m-9", "junk", "not JSON")
    rejected = (tmp_path / "events" / "rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected[0])["reason"] == "not JSON"


def test_decisions_count_the_files_as_they_hold_events_and_the_queue_in_their_place():
    # before, file copies, queue copies -> file copies dropped, queue copy kept, state after
    cases = [
        (UNKNOWN, 0, 1, 0, True, PENDING),  # first from the queue: counted, awaits its file
        (PENDING, 1, 0, 1, False, FILED),  # its file copy: dropped
        (PENDING, 2, 0, 1, False, FILED),  # the file holds it twice: one of the two counts
        (PENDING, 0, 1, 0, False, PENDING),  # the queue delivered it again: dropped
        (FILED, 0, 1, 0, False, FILED),  # the queue copy after the file: dropped
        (FILED, 1, 0, 0, False, FILED),  # another file copy: counted, as detect counts it
        (UNKNOWN, 1, 1, 0, False, FILED),  # both in one batch: the file's
        (UNKNOWN, 0, 3, 0, True, PENDING),  # three queue copies: one
        (UNKNOWN, 2, 0, 0, False, FILED),  # files only: as they are
    ]
    before = np.array([c[0] for c in cases], np.int8)
    got = decide(before, np.array([c[1] for c in cases]), np.array([c[2] for c in cases]))
    assert got.drop_files.tolist() == [c[3] for c in cases]
    assert got.keep_queue.tolist() == [c[4] for c in cases]
    assert got.states.tolist() == [c[5] for c in cases]
    assert got.special.tolist() == [False, True, True, True, True, False, True, True, False]


def test_seen_keys_look_up_update_merge_and_expire():
    seen = SeenKeys()
    rng = np.random.default_rng(7)
    keys = rng.integers(-(2**63), 2**63 - 1, 30_000, dtype=np.int64)
    times = np.arange(30_000, dtype=np.int64)
    seen.update(keys[:20_000], times[:20_000], np.full(20_000, PENDING, np.int8))
    seen.update(keys[10_000:30_000], times[10_000:], np.full(20_000, FILED, np.int8))
    assert len(seen) == 30_000  # merged: the later state wins
    states = seen.lookup(keys)
    assert (states[:10_000] == PENDING).all() and (states[10_000:] == FILED).all()
    assert (seen.lookup(np.array([123, 456], np.int64)) == UNKNOWN).all()
    seen.update(keys[:1], times[:1], np.array([FILED], np.int8))  # pending change, unmerged
    assert seen.lookup(keys[:2]).tolist() == [FILED, PENDING]
    seen.expire(25_000)
    assert len(seen) == 5_000 and (seen.lookup(keys[:25_000]) == UNKNOWN).all()
    k, t, s = decode(encode(keys[:3], times[:3], np.array([1, 2, 1])))
    assert k.tolist() == keys[:3].tolist() and t.tolist() == [0, 1, 2] and s.tolist() == [1, 2, 1]


def test_the_queue_takes_events_in_rejects_the_rest_and_deletes_after_commit(moto_server, tmp_path):
    """Through a moto server over HTTP: a message whose visibility timeout ends before its
    batch commits comes back, is not taken twice, and is deleted with its newest handle."""
    import time

    import boto3

    from loader.sources.events import EventQueue

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="events-unit")["QueueUrl"]
    second = {**RECORD, "eventID": "4e3d5a2b-0000-4d2f-8a4f-234567890abc"}
    for body in (eventbridge(RECORD), "not json", eventbridge(second),
                 eventbridge(RECORD, "Object Created")):  # fmt: skip
        sqs.send_message(QueueUrl=url, MessageBody=body if isinstance(body, str) else
                         json.dumps(body))  # fmt: skip
    inbox = EventInbox(str(tmp_path / "events"))
    queue = EventQueue(url, inbox, visibility_timeout=1)
    taken = queue.drain()
    assert (taken.events, len(taken.rejected)) == (2, 2), taken.render()
    assert taken.again >= 2  # the two events came back while "their batch ran"
    assert [json.loads(e.record)["eventID"] for e in inbox.entry(1).events] == [
        RECORD["eventID"],
        second["eventID"],
    ]
    rejected = (tmp_path / "events" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 2  # recorded once each, deleted at once
    time.sleep(1.2)
    inbox.commit(inbox.last, queue.delete)
    time.sleep(1.2)  # nothing comes back: every message was deleted
    assert queue.receive(wait_seconds=1).messages == 0


def test_the_status_line_says_where_events_came_from_and_the_latency_by_source():
    import datetime as dt
    from types import SimpleNamespace

    from loader.stream.apply import BatchStatus, _latency

    status = BatchStatus(12, events=412, files=1, queue=300, duplicates=96,
                         queue_ids={"q-1", "q-2"})  # fmt: skip
    at = dt.datetime(2026, 11, 30, 10, 0, 0)
    alerts = [
        SimpleNamespace(event_id="q-1", batch_id=12, event_time=at,
                        created_at=at + dt.timedelta(seconds=2)),
        SimpleNamespace(event_id="q-2", batch_id=12, event_time=at,
                        created_at=at + dt.timedelta(seconds=3)),
        SimpleNamespace(event_id="f-1", batch_id=12, event_time=at,
                        created_at=at + dt.timedelta(seconds=400)),
        SimpleNamespace(event_id=None, batch_id=12, event_time=at, created_at=at),  # a bucket
        SimpleNamespace(event_id="x", batch_id=11, event_time=at, created_at=at),  # not here
    ]  # fmt: skip
    _latency({12: status}, alerts)
    line = status.render()
    assert "events 412 (queue 300, files' 112; counted already 96), files 1," in line
    assert line.endswith(
        "queue latency median 2.5 s max 3.0 s, file latency median 400.0 s max 400.0 s"
    ), line
    assert "queue" not in BatchStatus(3, events=5, files=1).render()  # no events queue


def test_carried_starts_mix_organization_wide_and_per_account_learning():
    import datetime as dt

    from loader.stream.checkpoint import Carried

    at = dt.datetime(2024, 1, 1)
    text = Carried({("p", "111122223333"): at, ("p", None): at, ("q", None): at}, at).text()
    assert json.loads(text)["starts"][0] == ["p", None, "2024-01-01 00:00:00"]
