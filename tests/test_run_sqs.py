"""`run --sqs-queue-url` against a moto server on 127.0.0.1 (real HTTP, boto3 on both sides):
history under an s3:// prefix replayed first, then the S3 event notifications S3 itself sent to
the queue; killed after taking messages in but before its batch committed, then restarted.
No event lost, no alert twice (the alerts equal `detect`'s over the same files), the poison
message recorded and removed, the queue empty in the end."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from loader.cli import main
from loader.sample.generate import SampleSpec, write_sample

pytestmark = [pytest.mark.spark, pytest.mark.slow]

BUCKET = "trail-bucket-run-sqs"


def _in_queue(sqs, queue) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return int(got[names[0]]), int(got[names[1]])


def test_killed_after_intake_then_restarted_loses_nothing_and_repeats_nothing(
    spark, moto_server, tmp_path
):
    import boto3

    from loader.rules.validate import SQL
    from tests.test_persistence import LOADER, SPARK, enrichment_flags
    from tests.test_run_kill import KILL_RULES

    logs = tmp_path / "logs"
    write_sample(str(logs), SampleSpec(events=1200, days=4, events_per_file=300))
    # oldest first (the name's time, then the path): the history is the older half
    files = sorted(
        (p for p in (logs / "AWSLogs").rglob("*_CloudTrail_*.json.gz")),
        key=lambda p: (p.name.split("_")[3], str(p)),
    )
    assert len(files) >= 8
    rules = ["--rules", *[str(SQL / name) for name in KILL_RULES]]
    enrichment = enrichment_flags(logs)
    reference = tmp_path / "detect.jsonl"
    detect = ["detect", "--source", str(logs / "AWSLogs"), "--database", "sqsref"]
    assert main([*detect, "--output", str(reference), *rules, *enrichment]) == 0
    expected = sorted(json.loads(line)["alert_id"] for line in reference.read_text().splitlines())
    assert expected

    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="run-sqs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    half = len(files) // 2
    for path in files[:half]:  # history, written before the notifications were set up
        s3.upload_file(str(path), BUCKET, str(path.relative_to(logs)))
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )

    work = tmp_path / "work"
    work.mkdir()
    checkpoint, inbox = work / "ck", work / "ck" / "sqs"
    command = [
        *LOADER, "run", "--sqs-queue-url", queue, "--source", f"s3://{BUCKET}/AWSLogs/",
        "--checkpoint", str(checkpoint), "--database", "sqsrun", "--trigger", "1s",
        "--sqs-visibility-timeout", "3s", *rules, *enrichment, *SPARK,
    ]  # fmt: skip
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.Popen(command, cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 240
        while not condition():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.02)

    wait_for(lambda: (inbox / "history.done").exists())  # the history is listed: logs land
    sqs.send_message(QueueUrl=queue, MessageBody="<html>not a notification</html>")  # poison
    for path in files[half:]:  # S3 notifies the queue
        s3.upload_file(str(path), BUCKET, str(path.relative_to(logs)))
    duplicate = {"s3Bucket": BUCKET, "s3ObjectKey": [str(files[-1].relative_to(logs))]}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(duplicate))  # CloudTrail's form

    def taken_in() -> list[str]:  # messages' objects in the inbox, not yet committed
        entries = [json.loads(e.read_text()) for e in (inbox / "entries").glob("*.json")]
        return [url for e in entries if e["message_id"] for url in e["objects"]]

    wait_for(taken_in)
    proc.kill()
    proc.wait()
    assert taken_in()
    assert sum(_in_queue(sqs, queue)) > 0  # their messages were not deleted

    at = command.index("--trigger")
    restart = [*command[:at], "--once", *command[at + 2 :]]
    out = subprocess.run(restart, cwd=work, env=env, text=True, capture_output=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]

    warehouse = work / "spark-warehouse" / "sqsrun.db"
    alerts = sorted(r.alert_id for r in spark.read.parquet(str(warehouse / "alerts")).collect())
    assert alerts == expected  # none lost, none twice
    assert _in_queue(sqs, queue) == (0, 0)  # every message deleted, once committed
    rejected = [json.loads(line) for line in (inbox / "rejected.jsonl").read_text().splitlines()]
    assert [r["body"] for r in rejected] == ["<html>not a notification</html>"]
    assert "not JSON" in rejected[0]["reason"]
    assert not list((inbox / "entries").glob("*.json"))  # all committed
    seen = (inbox / "seen.log").read_text().splitlines()
    assert len(seen) == len(files) == len({line.split("\t")[1] for line in seen})
