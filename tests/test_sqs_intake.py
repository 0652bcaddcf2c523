"""The SQS source without Spark: every notification sample in the corpus understood, and the
intake against a moto server on 127.0.0.1 (real HTTP): S3 event notifications delivered by S3
itself, CloudTrail's SNS notification through a real SNS topic, duplicates, a poison message,
an object gone; messages deleted only when the inbox is done with them."""

from __future__ import annotations

import gzip
import json

import pytest

from loader.sources.notifications import ObjectRef, parse_notification
from loader.sources.sqs import Inbox, Queue, history_objects
from tests.corpus import CORPUS

NOTIFICATIONS = CORPUS / "notifications"
LOGS = "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_"

# file -> (objects named, of which CloudTrail log files, ignored parts, problems)
EXPECTED = {
    "aws-cloudtrail-processing-library/SQSMessageBody.json": (1, 1, 0, 0),  # a key twice
    "aws-cloudtrail-processing-library/SQSMessageBodyWrongFormat.json": (0, 0, 0, 1),
    "aws-lambda-go/s3-event.json": (1, 0, 0, 0),
    "aws-lambda-go/s3-glacier-event.json": (0, 0, 1, 0),
    "aws-lambda-go/s3-intelligenttier-event.json": (0, 0, 1, 0),
    "aws-lambda-go/s3-lifecycle-event.json": (0, 0, 1, 0),
    "aws-lambda-go/s3-replication-event.json": (0, 0, 1, 0),
    "aws-lambda-go/s3-restore-event.json": (0, 0, 1, 0),
    "aws-lambda-go/sns-event.json": (0, 0, 0, 1),  # "Hello from SNS!"
    "aws-lambda-go/sqs-event.json": (0, 0, 0, 1),  # "Message Body"
    "awsdocs-s3_event_ObjectCreated-Put_v2.0.json": (1, 0, 0, 0),
    "awsdocs-s3_event_ObjectCreated-Put_v2.1.json": (1, 0, 0, 0),
    "awsdocs-s3_test_event.json": (0, 0, 1, 0),
    "awsdocs_cloudtrail_sns_message_1.json": (1, 1, 0, 0),
    "awsdocs_cloudtrail_sns_message_2.json": (3, 3, 0, 0),
    "cloudtrail-rs/eventbridge-object-created.json": (1, 0, 0, 0),
    "cloudtrail-rs/eventbridge-object-deleted.json": (0, 0, 1, 0),
    "cloudtrail-rs/s3-event-object-created.json": (1, 0, 0, 0),
    "cloudtrail-rs/s3-event-urlencoded-key.json": (1, 0, 0, 0),
    "cloudtrail-rs/s3-test-event.json": (0, 0, 1, 0),
    "cloudtrail-rs/sns-s3-event.json": (1, 0, 0, 0),
    "cloudtrail-rs/sns-s3-test-event.json": (0, 0, 1, 0),
    "cloudtrail-rs/sqs-batch-partial-garbage.json": (2, 0, 0, 1),
    "cloudtrail-rs/sqs-s3-event.json": (1, 0, 0, 0),
    "cloudtrail-rs/sqs-sns-event.json": (1, 0, 0, 0),
}


def _notice(name: str):
    return parse_notification((NOTIFICATIONS / name).read_text())


@pytest.mark.skipif(not NOTIFICATIONS.is_dir(), reason="corpus absent")
def test_every_notification_sample_is_understood():
    found = sorted(str(p.relative_to(NOTIFICATIONS)) for p in NOTIFICATIONS.rglob("*.json"))
    assert found == sorted(EXPECTED)  # a new sample must be looked at
    for name, (objects, logs, ignored, problems) in EXPECTED.items():
        notice = _notice(name)
        got = (len(notice.objects), len(notice.log_objects), len(notice.ignored),
               len(notice.problems))  # fmt: skip
        assert got == (objects, logs, ignored, problems), (name, notice)


@pytest.mark.skipif(not NOTIFICATIONS.is_dir(), reason="corpus absent")
def test_notification_fields_are_exact():
    assert [o.key for o in _notice("awsdocs_cloudtrail_sns_message_2.json").objects] == [
        LOGS + "20160811T2215Z_kpaMYavMQA9Ahp7L.json.gz",
        LOGS + "20160811T2210Z_zqDkyQv3TK8ZdLr0.json.gz",
        LOGS + "20160811T2205Z_jaMVRa6JfdLCJYHP.json.gz",
    ]
    assert _notice("cloudtrail-rs/s3-event-urlencoded-key.json").objects == [
        ObjectRef("ct-siem-sync", "my file=a.json.gz")  # "my+file%3Da.json.gz" decoded
    ]
    eventbridge = _notice("cloudtrail-rs/eventbridge-object-created.json").objects
    assert eventbridge == [ObjectRef("amzn-s3-demo-bucket1", "example-key")]
    sns = _notice("aws-cloudtrail-processing-library/SQSMessageBody.json")
    assert sns.objects[0].bucket == "my-test-bucket"
    assert sns.objects[0].key.startswith("myprefix/AWSLogs/123456789012/CloudTrail/us-east-1/")
    garbage = _notice("cloudtrail-rs/sqs-batch-partial-garbage.json")
    assert [o.key for o in garbage.objects] == [
        "b21b84d653bb07b05b1e6b33684dc11b", "second-sibling-object.json.gz",
    ]  # fmt: skip
    assert "Records[1].body: not JSON" in garbage.problems[0]
    assert (
        "without 'Message'"
        in _notice("aws-cloudtrail-processing-library/SQSMessageBodyWrongFormat.json").problems[0]
    )
    assert "s3:TestEvent" in _notice("awsdocs-s3_test_event.json").ignored[0]


def test_bad_bodies_are_problems_with_where():
    assert parse_notification("[1, 2]").problems == ["body: a JSON list, not an object"]
    odd = parse_notification('{"hello": 1}').problems[0]
    assert "not a CloudTrail or S3 notification (keys: hello)" in odd
    missing = parse_notification('{"s3Bucket": "b"}').problems[0]
    assert "without s3ObjectKey" in missing
    nested = parse_notification(json.dumps({"Type": "Notification", "Message": "{oops"}))
    assert nested.problems[0].startswith("body.Message: not JSON")


# --- against moto ---------------------------------------------------------------------------

BUCKET = "trail-bucket-sqs-intake"
DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/04/02"


def _key(n: int) -> str:
    return f"{DAY}/111122223333_CloudTrail_us-east-1_20240402T00{n:02d}Z_q{n}.json.gz"


@pytest.fixture
def aws(moto_server):
    import boto3

    s3, sqs, sns = boto3.client("s3"), boto3.client("sqs"), boto3.client("sns")
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="trail-intake")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    topic = sns.create_topic(Name="cloudtrail-notices")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    yield s3, sqs, sns, queue, topic
    sqs.delete_queue(QueueUrl=queue)
    sns.delete_topic(TopicArn=topic)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def _in_queue(sqs, queue) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return int(got[names[0]]), int(got[names[1]])


def test_intake_keeps_messages_until_commit_and_removes_poison(aws, tmp_path):
    s3, sqs, sns, queue, topic = aws
    body = gzip.compress(json.dumps({"Records": [{"eventID": "e"}]}).encode())
    sqs.send_message(QueueUrl=queue, MessageBody="not json {{{")  # poison first
    for n in range(3):  # S3 notifies the queue itself (key URL-encoded by S3)
        s3.put_object(Bucket=BUCKET, Key=_key(n), Body=body)
    s3.put_object(Bucket=BUCKET, Key=f"{DAY}/digest-or-other.txt", Body=b"x")  # not a log file
    # CloudTrail's notification through SNS: one new object, one already announced by S3
    notice = {"s3Bucket": BUCKET, "s3ObjectKey": [_key(2), _key(3)]}
    s3.put_object(Bucket=BUCKET, Key=_key(3) + ".tmp", Body=b"")  # not a log file
    s3.copy_object(Bucket=BUCKET, Key=_key(9), CopySource={"Bucket": BUCKET, "Key": _key(0)})
    sns.publish(TopicArn=topic, Message=json.dumps(notice))
    gone = {"s3Bucket": BUCKET, "s3ObjectKey": [_key(7)]}  # never written
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(gone))

    inbox = Inbox(str(tmp_path / "inbox"))
    report = Queue(queue, inbox).receive()
    objects = [url for n in inbox.numbers() for url in inbox.entry(n).objects]
    # _key(3) does not exist (only its .tmp twin): that part of the SNS message is rejected
    assert sorted(objects) == sorted(f"s3://{BUCKET}/{_key(n)}" for n in (0, 1, 2, 9))
    assert report.duplicates == 1 and report.objects == 4
    reasons = [r["reason"] for r in inbox.rejected()]
    assert len(reasons) == 3, reasons
    assert any("not JSON" in r for r in reasons)
    assert any(_key(7) in r and "object not found" in r for r in reasons)
    assert any(_key(3) in r and "object not found" in r for r in reasons)
    assert inbox.rejected()[0]["body"] == "not json {{{"  # kept whole, to replay by hand
    # the poison, the .txt, .tmp and the all-gone message are deleted; the 4 log objects'
    # messages wait for their batch (the SNS one carried a new object too)
    assert _in_queue(sqs, queue) == (0, len(inbox.numbers()))

    again = Queue(queue, Inbox(str(tmp_path / "inbox"))).receive()  # a restart: nothing new
    assert again.messages == 0
    inbox.commit(inbox.last, Queue(queue, inbox).delete_handles)
    assert _in_queue(sqs, queue) == (0, 0)
    assert inbox.numbers() == [] and inbox.committed == 4

    # a late duplicate notification of a committed object adds nothing and is deleted
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(notice | {"s3ObjectKey": [_key(1)]}))
    late = Queue(queue, Inbox(str(tmp_path / "inbox"))).receive()
    assert (late.messages, late.duplicates, late.objects) == (1, 1, 0)
    assert _in_queue(sqs, queue) == (0, 0)


def test_history_is_taken_oldest_first_once(aws, tmp_path):
    s3 = aws[0]
    for n in (5, 1, 3):
        s3.put_object(Bucket=BUCKET, Key=_key(n), Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key=_key(4).replace("_CloudTrail_", "_CloudTrail-Digest_"),
                  Body=b"{}")  # fmt: skip
    inbox = Inbox(str(tmp_path / "inbox"))
    source = f"s3://{BUCKET}/AWSLogs/"
    assert inbox.add_history(history_objects(source), chunk=2) == 3
    assert [inbox.entry(n).objects for n in inbox.numbers()] == [
        [f"s3://{BUCKET}/{_key(1)}", f"s3://{BUCKET}/{_key(3)}"], [f"s3://{BUCKET}/{_key(5)}"],
    ]  # fmt: skip
    assert inbox.history_done
    assert Inbox(str(tmp_path / "inbox")).add_history(history_objects(source)) == 0
