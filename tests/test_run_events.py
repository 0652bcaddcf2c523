"""`run --events-queue-url` against a moto server on 127.0.0.1 (real HTTP, boto3 on both
sides): the corpus's CloudTrail events put on a queue as EventBridge delivers them, beside a
`--source` folder where the same events land later as log files. Killed after taking messages
in but before its batch committed, then restarted: the alerts equal `detect`'s over the files
alone, none twice; the profiles count what a files-only run counts; every message deleted once
committed; malformed bodies and other events rejected with a reason."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from loader.cli import main
from tests.corpus import arrange_corpus

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RULES = [
    "alerts/root_account_usage.sql", "alerts/console_login_without_mfa.sql",
    "alerts/unauthorized_api_calls_burst.sql", "alerts/iam_access_key_created.sql",
    "profiles/new_source_ip.sql", "profiles/new_principal_arn.sql",
]  # fmt: skip
KINDS = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
    "AwsConsoleAction": "AWS Console Action via CloudTrail",
}
WINDOW = "5000d"  # the corpus's events span 2014 to 2023: all of them are "recent"
REJECTS = [
    "<html>502 Bad Gateway</html>",
    json.dumps({"version": "0", "detail-type": "EC2 Instance State-change Notification",
                "source": "aws.ec2", "account": "111122223333", "region": "us-east-1",
                "detail": {"instance-id": "i-0123456789abcdef0", "state": "running"}}),
]  # fmt: skip


def _split_corpus(tmp: Path) -> tuple[list[dict], list[dict]]:
    """The corpus's records, placed, split in time: the newer half of those with an eventID of
    their own are the live part (they arrive in time order, as live events do); the rest, older
    records and those without a usable eventID or eventTime, are the history."""
    arranged = tmp / "arranged"
    arrange_corpus(arranged)
    placed = []
    for path in sorted((arranged / "AWSLogs").rglob("*_CloudTrail_*.json.gz")):
        try:
            records = json.loads(gzip.decompress(path.read_bytes()))["Records"]
        except (ValueError, KeyError, TypeError):
            continue  # a file CloudTrail would never write (the runner quarantines it)
        account, _, region = path.relative_to(arranged).parts[-7:-4]
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict):
                placed.append({"account": account, "region": region, "record": record})
    keys = Counter((p["account"], p["record"].get("eventID")) for p in placed)

    def live_time(item: dict) -> str | None:
        record = item["record"]
        stamp = record.get("eventTime")
        if not (
            isinstance(stamp, str)
            and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", stamp)
        ):
            return None
        if not record.get("eventID") or keys[(item["account"], record["eventID"])] > 1:
            return None  # the corpus holds placeholder eventIDs several times
        return stamp

    times = sorted(t for t in map(live_time, placed) if t)
    cut = times[len(times) // 2]
    live = sorted((p for p in placed if (live_time(p) or "") >= cut),
                  key=lambda p: p["record"]["eventTime"])  # fmt: skip
    history = [p for p in placed if (live_time(p) or "") < cut]
    return history, live


def _write_files(items: list[dict], logs: Path, tag: str, per_file: int = 40) -> list[Path]:
    """Log files in the CloudTrail layout, ``per_file`` records each, per account and region."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        groups.setdefault((item["account"], item["region"]), []).append(item["record"])
    written = []
    for (account, region), records in sorted(groups.items()):
        for n, start in enumerate(range(0, len(records), per_file)):
            folder = logs / "AWSLogs" / account / "CloudTrail" / region / "2025" / "01" / "02"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{account}_CloudTrail_{region}_20250102T0000Z_{tag}{n:03d}.json.gz"
            body = json.dumps({"Records": records[start : start + per_file]}).encode()
            (folder / name).write_bytes(gzip.compress(body, mtime=0))
            written.append(folder / name)
    return written


def _messages(live: list[dict]) -> list[str]:
    """The live records as EventBridge delivers them, in time order."""
    bodies = []
    for item in live:
        record = item["record"]
        source = str(record.get("eventSource") or "unknown").split(".")[0]
        bodies.append(json.dumps({
            "version": "0", "id": f"{len(bodies):08d}-eb", "source": f"aws.{source}",
            "detail-type": KINDS.get(record.get("eventType"), KINDS["AwsApiCall"]),
            "account": item["account"], "region": item["region"], "time": record["eventTime"],
            "resources": [], "detail": record,
        }))  # fmt: skip
    return bodies


def _send(sqs, queue: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        assert not sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")


def _in_queue(sqs, queue) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(got[n]) for n in names)


def _profiles(spark, path: Path) -> list[tuple]:
    """profile_state as the view shows it, from the state log's files."""
    spark.read.parquet(str(path)).createOrReplaceTempView("__events_state_log")
    rows = spark.sql(
        "SELECT rule, entity, value, first_seen, last_seen, seen_count FROM ("
        "SELECT *, row_number() OVER (PARTITION BY rule, entity, value ORDER BY batch_id DESC) "
        "AS version FROM __events_state_log) WHERE version = 1 AND seen_count > 0"
    ).collect()
    return sorted((tuple(r) for r in rows), key=repr)


def test_queue_and_files_count_each_event_once_through_a_kill(spark, moto_server, tmp_path):
    import boto3

    from loader.rules.validate import SQL
    from tests.test_persistence import LOADER, SPARK

    history, live = _split_corpus(tmp_path)
    assert len(live) > 200 and len(history) > 500
    everything, logs = tmp_path / "everything", tmp_path / "logs"
    _write_files(history, logs, "h")
    shutil.copytree(logs, everything)
    live_files = _write_files(live, everything, "l")
    bodies = _messages(live)

    rules = ["--rules", *[str(SQL / name) for name in RULES]]
    reference = tmp_path / "detect.jsonl"
    detect = ["detect", "--source", str(everything / "AWSLogs"), "--database", "evref"]
    assert main([*detect, "--output", str(reference), *rules]) == 0
    expected = sorted(json.loads(line)["alert_id"] for line in reference.read_text().splitlines())
    assert len(expected) > 10

    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="cloudtrail-events")["QueueUrl"]
    work = tmp_path / "work"
    work.mkdir()
    checkpoint = work / "ck"
    inbox = checkpoint / "events"
    command = [
        *LOADER, "run", "--source", str(logs / "AWSLogs"), "--events-queue-url", queue,
        "--dedup-window", WINDOW, "--checkpoint", str(checkpoint), "--database", "evrun",
        "--trigger", "1s", "--sqs-visibility-timeout", "8s", "--no-coverage", *rules, *SPARK,
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

    wait_for(lambda: (checkpoint / "observations" / "batch-000000000").exists())  # history in
    _send(sqs, queue, REJECTS + bodies + bodies[:5])  # EventBridge delivers at least once

    def taken_in() -> int:  # events in the inbox, not yet committed
        entries = [json.loads(e.read_text()) for e in (inbox / "entries").glob("*.json")]
        return sum(len(e["events"]) for e in entries)

    # the batch holding them planned (its offsets written), not committed
    planned = checkpoint / "observe" / "offsets" / "1"
    wait_for(lambda: taken_in() > 50 and planned.exists())
    # killed while its intake may hold messages it received but had not written to the inbox:
    # they come back after the visibility timeout (8 s, before the restart drains the queue)
    proc.kill()
    proc.wait()
    assert taken_in() and _in_queue(sqs, queue) > 0  # taken in, not deleted
    for path in live_files:  # the trail's files land, minutes later
        target = logs / path.relative_to(everything)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)

    at = command.index("--trigger")
    restart = [*command[:at], "--once", *command[at + 2 :]]
    out = subprocess.run(restart, cwd=work, env=env, text=True, capture_output=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    printed = out.stdout + out.stderr

    warehouse = work / "spark-warehouse" / "evrun.db"
    alerts = sorted(r.alert_id for r in spark.read.parquet(str(warehouse / "alerts")).collect())
    assert alerts == expected  # none lost, none twice
    assert _in_queue(sqs, queue) == 0  # every message deleted, once committed
    assert not list((inbox / "entries").glob("*.json"))
    rejected = [json.loads(line) for line in (inbox / "rejected.jsonl").read_text().splitlines()]
    reasons = {r["body"]: r["reason"] for r in rejected}
    assert "not JSON" in reasons[REJECTS[0]]
    assert "not a CloudTrail event: detail-type 'EC2 Instance" in reasons[REJECTS[1]]
    assert len(rejected) == 2
    assert "counted already" in printed and "queue latency" in printed, printed[-3000:]

    # the profiles count each event once: as a run over the files alone
    files_only = ["run", "--source", str(logs / "AWSLogs"), "--once", "--database", "evfiles",
                  "--checkpoint", str(tmp_path / "ck-files"), "--no-coverage", *rules]  # fmt: skip
    assert main(files_only) == 0
    spark.catalog.refreshTable("evfiles.profile_state_log")
    warehouse_files = Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
    assert _profiles(spark, warehouse / "profile_state_log") == _profiles(
        spark, warehouse_files / "evfiles.db" / "profile_state_log"
    )


def test_the_deduplicator_over_batches_and_a_restart(spark, tmp_path):
    """Deduplicator.apply on the Spark session: queue copies stand in for file copies, a
    file's own copies count as detect counts them, a queue event older than the window is
    skipped, and a new runner (a restart) reads the keys the written batches left."""
    import datetime as dt

    from loader.stream.checkpoint import Folder, batch_folder
    from loader.stream.dedup import SEEN_FILE, Deduplicator

    folder = Folder(spark, str(tmp_path / "observations"))
    folder.make()
    queue, file = "events-queue://q/m-", "/logs/AWSLogs/111122223333/CloudTrail/f.json.gz"

    def frame(rows):
        return spark.createDataFrame(
            rows, "eventid STRING, account STRING, eventtime STRING, source_file STRING"
        ).cache()

    def run(dedup, batch, rows, clock):
        outcome = dedup.apply(frame(rows), batch, dt.datetime.fromisoformat(clock))
        kept = sorted((r.eventid, r.source_file[:5]) for r in outcome.events.collect())
        folder.make()
        if outcome.new_keys:  # as observe_batch writes it, in the batch's folder
            folder.write_bytes(f"{batch_folder(batch)}/{SEEN_FILE}", outcome.new_keys)
        dedup.remember(batch, outcome.new_keys)
        return kept, outcome

    a, b, c = ("A", "1", "2026-11-30T10:00:00Z"), ("B", "1", "2026-11-30T10:05:00Z"), (
        "C", "1", "2026-11-30T09:00:00Z")  # fmt: skip
    first = Deduplicator(folder, window=3600)
    kept, outcome = run(first, 0, [(*a, queue + "1"), (*b, queue + "2"), (*b, queue + "3"),
                                   (*c, file)], "2026-11-30T10:05:00")  # fmt: skip
    assert kept == [("A", "event"), ("B", "event"), ("C", "/logs")]
    assert (outcome.queue, outcome.duplicates, outcome.stale) == (3, 1, 0)
    # the same event ID in another account is another event
    kept, _ = run(first, 1, [("A", "2", a[2], queue + "4")], "2026-11-30T10:05:00")
    assert kept == [("A", "event")]

    restarted = Deduplicator(folder, window=3600)  # reads batch-0 and batch-1's keys
    stale = ("E", "1", "2026-11-30T08:00:00Z", queue + "5")
    kept, outcome = run(restarted, 2, [(*a, file), (*b, file), (*b, file + "2"), stale,
                                       ("D", "1", "2026-11-30T10:10:00Z", file),
                                       ("F", "1", "2026-11-30T07:00:00Z", file)],
                        "2026-11-30T10:10:00")  # fmt: skip
    # A's and B's queue copies stood in for their first file copies; B's second file copy
    # counts (detect counts it); E from the queue is older than the window; F, an old file
    # event, counts as it comes
    assert kept == [("B", "/logs"), ("D", "/logs"), ("F", "/logs")]
    assert (outcome.queue, outcome.duplicates, outcome.stale) == (1, 2, 1)
    kept, _ = run(restarted, 3, [(*a, queue + "1"), (*c, file)], "2026-11-30T10:10:00")
    assert kept == [("C", "/logs")]  # A came back from the queue; C's second file copy counts
