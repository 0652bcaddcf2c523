"""`run --events-queue-url`: from an event being sent to its alert in a JSON-lines sink, with
the bundled rule pack, against a moto server on 127.0.0.1 (SQS over HTTP, as in production
but without the network).

Each second the feeder sends 100 (then 10) CloudTrail events (from the sample generator,
stamped now); the first of each second's events is a root sign-in of an account of its own, which
`root_console_login` alerts on. For each such event: the time from its sending (queue) or its
file landing (files) to its alert line in the sink. Rows, measured in the same run:

- **queue**: `run --events-queue-url URL --trigger 1s`, events sent as EventBridge messages;
- **files**: `run --source DIR --trigger 1s`, the same events landing as one log file a second
  (CloudTrail itself writes a file about every 5 minutes, so from the call add about 5 minutes
  to these numbers, which are the runner's own part);
- **queue + files**: both, the files landing 30 s after their events went to the queue (the
  trail's delivery delay, shortened): the queue's alerts, and no alert twice.

    python -m bench.events [--seconds 60] [--rates 100,10] [--rows queue,files,both]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import markdown_table

TRIGGER = 1
FILE_DELAY = 30.0  # seconds between an event on the queue and its file landing ("both")
WARM_UP = 180.0  # the runner's start: JVM, rules, the first (empty) batches


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _template(work: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Events to copy, and the enrichment flags of the sample's GeoIP and Tor files."""
    from loader.enrichment import SAMPLE_FILES
    from loader.sample.generate import SampleSpec, write_sample

    logs = work / "template"
    write_sample(str(logs), SampleSpec(events=2000, days=1, events_per_file=1000))
    first = sorted(logs.rglob("*_CloudTrail_*.json.gz"))[0]
    flags = [f"--{key.replace('_', '-')}={logs / path}" for key, path in SAMPLE_FILES.items()]
    return json.loads(gzip.decompress(first.read_bytes()))["Records"], flags


def _envelope(event: dict[str, Any]) -> str:
    return json.dumps({
        "version": "0", "id": event["eventID"], "detail-type": "AWS API Call via CloudTrail",
        "source": "aws." + str(event.get("eventSource", "iam")).split(".")[0],
        "account": event.get("recipientAccountId") or "111122223333", "time": event["eventTime"],
        "region": event.get("awsRegion") or "us-east-1", "resources": [], "detail": event,
    })  # fmt: skip


class Feed:
    """Sends ``rate`` events a second to the queue and/or lands them as files."""

    def __init__(self, template: list[dict[str, Any]], rate: int, queue: str | None,
                 folder: Path | None, file_delay: float) -> None:  # fmt: skip
        import boto3

        self.template, self.rate, self.queue = template, rate, queue
        self.folder, self.file_delay = folder, file_delay
        self.sqs = boto3.client("sqs")
        self.sent: dict[str, float] = {}  # probe eventID -> sent (queue) or landed (files)
        self.landed: dict[str, float] = {}
        self._pending: list[tuple[float, list[dict[str, Any]], str]] = []
        self.stop = threading.Event()

    def second(self, number: int) -> None:
        import datetime as dt

        from bench.run import _batch_events

        now = dt.datetime.now(dt.timezone.utc)
        tag = f"ev{number:05d}"
        events = _batch_events(self.template, self.rate, now, tag)
        probe = events[0]["eventID"]
        if self.queue:
            bodies = [_envelope(e) for e in events]
            for start in range(0, len(bodies), 10):
                entries = [{"Id": str(i), "MessageBody": b}
                           for i, b in enumerate(bodies[start : start + 10])]  # fmt: skip
                self.sqs.send_message_batch(QueueUrl=self.queue, Entries=entries)
                if start == 0:
                    self.sent[probe] = time.time()
        if self.folder is not None:
            self._pending.append((time.time() + self.file_delay, events, tag))
        self._land(time.time())

    def _land(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, events, tag = self._pending.pop(0)
            account = events[1].get("recipientAccountId") or "111122223333"
            stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
            day = self.folder / "AWSLogs" / account / "CloudTrail" / "us-east-1" / time.strftime(
                "%Y/%m/%d", time.gmtime())  # fmt: skip
            day.mkdir(parents=True, exist_ok=True)
            name = f"{account}_CloudTrail_us-east-1_{stamp}_{tag}.json.gz"
            partial = day / f".{name}.tmp"
            partial.write_bytes(gzip.compress(json.dumps({"Records": events}).encode()))
            partial.rename(day / name)  # lands whole, as an S3 object does
            self.landed[events[0]["eventID"]] = time.time()

    def run(self, seconds: float) -> float:
        """Feed for ``seconds``; the events a second actually sent (moto may not keep up)."""
        number, start = 1, time.monotonic()
        while time.monotonic() - start < seconds:
            self.second(number)
            number += 1
            time.sleep(max(0.0, start + number - 1 - time.monotonic()))
        achieved = (number - 1) * self.rate / (time.monotonic() - start)
        while self._pending:  # the last files
            time.sleep(0.2)
            self._land(time.time())
        return achieved


def _watch(sink: Path, seen: dict[str, float], counts: dict[str, int],
           stop: threading.Event) -> None:  # fmt: skip
    """When each root_console_login alert line appears in the sink."""
    offset = 0
    while not stop.is_set():
        if sink.exists():
            with sink.open(encoding="utf-8") as handle:
                handle.seek(offset)
                text = handle.read()
                offset += len(text.encode())
            for line in text.splitlines():
                alert = json.loads(line)
                if alert.get("rule") == "root_console_login" and alert.get("event_id"):
                    seen.setdefault(alert["event_id"], time.time())
                    counts[alert["event_id"]] = counts.get(alert["event_id"], 0) + 1
        time.sleep(0.05)


def measure(row: str, template: list[dict[str, Any]], flags: list[str], rate: int,
            seconds: float, work: Path) -> list[str]:  # fmt: skip
    import boto3

    base = work / f"{row}-{rate}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    sink = base / "alerts.jsonl"
    (base / "tsa.toml").write_text(f'[[sinks]]\ntype = "jsonl"\npath = "{sink}"\n')
    queue = None
    if row in ("queue", "both"):
        queue = boto3.client("sqs").create_queue(QueueName=f"bench-{row}-{rate}")["QueueUrl"]
    folder = base / "logs" if row in ("files", "both") else None
    command = [sys.executable, "-m", "loader", "run", "--trigger", f"{TRIGGER}s",
               "--checkpoint", str(base / "ck"), "--config", str(base / "tsa.toml"),
               "--no-coverage", "--master", "local[2]", *flags]  # fmt: skip
    if queue:
        command += ["--events-queue-url", queue]
    if folder is not None:
        (folder / "AWSLogs").mkdir(parents=True)
        command += ["--source", str(folder / "AWSLogs")]
    log = (base / "run.log").open("w")
    proc = subprocess.Popen(command, cwd=base, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})  # fmt: skip
    try:
        delay = FILE_DELAY if row == "both" else 0.0
        feed = Feed(template, rate, queue, folder, 0.0)
        feed.second(0)  # a first batch, to warm the runner up (not timed)
        deadline = time.monotonic() + WARM_UP
        while "batch " not in (base / "run.log").read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (base / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(10)
        feed = Feed(template, rate, queue, folder, delay)
        seen: dict[str, float] = {}
        counts: dict[str, int] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(sink, seen, counts, stop), daemon=True)
        watcher.start()
        achieved = feed.run(seconds)
        time.sleep(60)  # the last alerts
        stop.set()
        watcher.join()
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        log.close()
    start = feed.sent if queue else feed.landed
    delays = sorted(seen[e] - t for e, t in start.items() if e in seen)
    assert delays, f"{row}: no alert came back; see {base / 'run.log'}"
    twice = sum(1 for n in counts.values() if n > 1)
    pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
    what = {
        "queue": "`run --events-queue-url`, from the message sent",
        "files": "`run --source`, from the file landing (+ ~5 min CloudTrail delivery)",
        "both": f"queue + the same events' files {FILE_DELAY:.0f} s later, from the message sent",
    }[row]
    return [what, f"{rate} / {achieved:.0f}", f"{len(delays)} of {len(start)}", str(twice),
            f"{pick(0.5):.1f}", f"{pick(0.95):.1f}", f"{delays[-1]:.1f}", "10"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", default="100,10", help="events a second, per row (100,10)")
    parser.add_argument("--rows", default="queue,files,both")
    args = parser.parse_args()
    port = _free_port()
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
    })  # fmt: skip
    os.environ.pop("AWS_PROFILE", None)
    # moto in a process of its own: in the feeder's, it would share one interpreter lock
    moto = Path(sys.executable).with_name("moto_server")
    server = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="tsa-bench-events-"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        template, flags = _template(work)
        rows = [measure(row, template, flags, int(rate), args.seconds, work)
                for rate in args.rates.split(",") for row in args.rows.split(",")]  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    header = ["what ran (all bundled rules, --trigger 1s, 2 cores)", "events/s asked / sent",
              "alerts timed", "alerted twice", "median s", "p95 s", "max s",
              "target p95 s"]  # fmt: skip
    print(f"\n{args.seconds:.0f} s of events per row; work in {work}\n")
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
