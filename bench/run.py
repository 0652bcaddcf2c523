"""`run`, the streaming runner, with the bundled rule pack: sustained throughput, latency from
a file landing to its alert, and the per-batch cost as the profile state grows.

- **throughput**: `run --once` over the reference events (the history replay: observe every
  batch, then apply), events/s per core, from the raw files and with the history replayed from
  the materialized Parquet table (`--history-table`, the table made beforehand, not timed);
  competitor in the same run: `detect` (the batch backtest) over the same events and rules.
- **latency**: a live runner (`--trigger`, default 5 s) while a writer lands one log file per
  second holding 1,000 events, one of them a root sign-in; for each file, the time from its
  landing to its alert row being written.
- **state**: the apply query's batch time for the same small batch (10,000 sightings, 1,000 of
  them new values) after the state holds 10 thousand, then N million, profile entries.

    python -m bench.run [--part throughput|latency|state|all] [--events 1000000]
                        [--state-entries 10000000] [--driver-memory 8g]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench.common import DATA, cores, log_files, markdown_table, reference_logs

WORK = DATA / "run_work"
PROFILE_RULE = """/*
name: bench_profile
kind: profile
description: bench: a per-principal profile of the values each principal used
severity: low
entity: principal
value: item
*/
SELECT eventTime, eventID, userIdentity.arn AS principal, eventName AS item FROM cloudtrail
"""


def session(driver_memory: str, logs: Path):  # type: ignore[no-untyped-def]
    from loader.config import resolve
    from loader.enrichment import enriched_session, with_sample_sources

    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)  # the bench's own metastore and warehouse
    settings = resolve(None, {"conf": [f"spark.driver.memory={driver_memory}"]})
    with_sample_sources(settings, str(logs))
    return enriched_session(settings, "bench run")


def _run_once(spark, logs: Path, rules, enrichment, name: str, table: str | None = None):  # type: ignore[no-untyped-def]
    """One `run --once` from a new checkpoint: (seconds, observe seconds, events, alerts)."""
    from loader.engine.plan import plan_rules
    from loader.stream.history import history
    from loader.stream.runner import start
    from loader.stream.source import stream_events

    spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")
    checkpoint = WORK / f"{name}_checkpoint"
    shutil.rmtree(checkpoint, ignore_errors=True)
    lines: list[str] = []
    started = time.perf_counter()
    replay = history(spark, table, str(logs / "AWSLogs"), str(checkpoint)) if table else None
    events = stream_events(
        spark, str(logs / "AWSLogs"), files_where=replay.raw_filter() if replay else None
    )
    runner = start(
        spark, events, plan_rules(rules), name, str(checkpoint), None, True,
        report=lines.append, enrichment=enrichment, history=replay,
    )  # fmt: skip
    runner.observe.awaitTermination()
    observed = time.perf_counter() - started
    assert runner.wait() == 0
    seconds = time.perf_counter() - started
    spark.catalog.refreshTable(f"{name}.alerts")
    alerts = spark.table(f"{name}.alerts").count()
    return seconds, observed, _events_in(lines), alerts


def throughput(spark, enrichment, logs: Path, events_expected: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    from loader.batch.detect import detect, source_events
    from loader.rules.validate import load_valid_rules
    from loader.tables.create_cloudtrail import create_cloudtrail_tables
    from loader.tables.materialize import materialize

    rules = load_valid_rules([])
    n_cores = cores()
    print(f"detect, {len(rules)} rules ...", flush=True)
    spark.sql("DROP DATABASE IF EXISTS bench_run_detect CASCADE")
    started = time.perf_counter()
    report = detect(
        spark, rules, source_events(spark, str(logs / "AWSLogs")), "bench_run_detect",
        enrichment=enrichment,
    )  # fmt: skip
    detect_seconds = time.perf_counter() - started
    rows = [[
        f"`detect` (batch backtest), all {len(rules)} rules, same events",
        f"{detect_seconds:.1f}", "1.00x", str(n_cores),
        f"{report.events / detect_seconds / n_cores:,.0f}", f"{report.added:,}",
    ]]  # fmt: skip
    print(f"run --once, {len(rules)} rules, raw files ...", flush=True)
    seconds, observed, events, alerts = _run_once(spark, logs, rules, enrichment, "bench_run")
    assert events == report.events, (events, report.events)
    raw_rate = events / seconds / n_cores
    rows.append([
        f"this project: `run --once`, all {len(rules)} rules, raw files (observe {observed:.0f} s "
        f"+ apply {seconds - observed:.0f} s)", f"{seconds:.1f}",
        f"{seconds / detect_seconds:.2f}x", str(n_cores), f"{raw_rate:,.0f}", f"{alerts:,}",
    ])  # fmt: skip
    print("materialize (not timed) ...", flush=True)
    spark.sql("DROP DATABASE IF EXISTS bench_hist CASCADE")
    create_cloudtrail_tables(spark, str(logs / "AWSLogs"), "bench_hist")
    materialize(spark, "bench_hist")
    print(f"run --once, {len(rules)} rules, --history-table ...", flush=True)
    seconds, observed, events, alerts = _run_once(
        spark, logs, rules, enrichment, "bench_run_hist", "bench_hist.cloudtrail_parquet"
    )
    assert events == report.events, (events, report.events)
    rate = events / seconds / n_cores
    rows.append([
        f"this project: `run --once --history-table bench_hist.cloudtrail_parquet`, all "
        f"{len(rules)} rules (observe {observed:.0f} s + apply {seconds - observed:.0f} s; "
        f"{rate / raw_rate:.1f}x the raw files' rate)", f"{seconds:.1f}",
        f"{seconds / detect_seconds:.2f}x", str(n_cores), f"{rate:,.0f}", f"{alerts:,}",
    ])  # fmt: skip
    return rows


def _events_in(lines: list[str]) -> int:
    found = (re.match(r"batch \d+: events ([\d,]+), files", line) for line in lines)
    return sum(int(match.group(1).replace(",", "")) for match in found if match)


def _batch_events(template: list[dict], n: int, now: dt.datetime, tag: str) -> list[dict]:
    """``n`` events stamped ``now``; the first is a root sign-in (root_console_login)."""
    events = []
    for i in range(n):
        event = copy.deepcopy(template[i % len(template)])
        event["eventTime"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["eventID"] = f"{tag}-{i:05d}"
        events.append(event)
    account = f"{abs(hash(tag)) % 10**12:012d}"  # a root of its own: no dedup across files
    events[0].update(
        recipientAccountId=account,
        eventName="ConsoleLogin", eventSource="signin.amazonaws.com",
        userIdentity={"type": "Root", "principalId": account,
                      "arn": f"arn:aws:iam::{account}:root", "accountId": account},
        responseElements={"ConsoleLogin": "Success"},
        additionalEventData=json.dumps({"MFAUsed": "Yes"}),
    )  # fmt: skip
    return events


def latency(spark, enrichment, logs: Path, trigger: int, seconds: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    from loader.engine.plan import plan_rules
    from loader.rules.validate import load_valid_rules
    from loader.stream.runner import start
    from loader.stream.source import stream_events

    rules = load_valid_rules([])
    template = json.loads(gzip.decompress(log_files(logs)[0].read_bytes()))["Records"]
    live = Path(tempfile.mkdtemp(prefix="tsa-live-", dir=WORK))
    account = template[0].get("recipientAccountId", "111122223333")
    folder = live / "AWSLogs" / account / "CloudTrail" / "us-east-1"
    checkpoint = WORK / "latency_checkpoint"
    shutil.rmtree(checkpoint, ignore_errors=True)
    spark.sql("DROP DATABASE IF EXISTS bench_live CASCADE")
    landed: dict[str, float] = {}
    reported: dict[int, float] = {}

    def report(line: str) -> None:
        if line.startswith("batch "):
            reported[int(line.split()[1].rstrip(":"))] = time.time()
        print("  " + line.splitlines()[0][:110], flush=True)

    def write_file(number: int) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        day = folder / now.strftime("%Y/%m/%d")
        day.mkdir(parents=True, exist_ok=True)
        tag = f"live{number:05d}"
        body = gzip.compress(
            json.dumps({"Records": _batch_events(template, 1000, now, tag)}).encode()
        )
        name = f"{account}_CloudTrail_us-east-1_{now:%Y%m%dT%H%MZ}_{tag}.json.gz"
        partial = day / f".{name}.tmp"
        partial.write_bytes(body)
        partial.rename(day / name)  # lands whole, as an S3 object does
        landed[f"{tag}-00000"] = time.time()

    write_file(0)  # the source needs its first folder
    runner = start(
        spark, stream_events(spark, str(live / "AWSLogs")), plan_rules(rules), "bench_live",
        str(checkpoint), trigger, False, report=report, enrichment=enrichment,
    )  # fmt: skip
    time.sleep(trigger + 20)  # the first batch pays for warming up
    stop = threading.Event()

    def feed() -> None:
        number = 1
        while not stop.is_set():
            write_file(number)
            number += 1
            stop.wait(1.0)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(seconds)
    stop.set()
    feeder.join()
    time.sleep(trigger + 30)  # the last files' alerts
    runner.stop()
    spark.catalog.refreshTable("bench_live.alerts")
    delays = []
    for row in spark.sql(
        "SELECT event_id, batch_id FROM bench_live.alerts WHERE rule = 'root_console_login'"
    ).collect():
        if (
            row.event_id in landed
            and row.event_id != "live00000-00000"
            and row.batch_id in reported
        ):
            delays.append(reported[row.batch_id] - landed[row.event_id])
    delays.sort()
    fed = len(landed) - 1
    assert delays, "no alerts came back"
    pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
    return [[
        f"this project: `run --trigger {trigger}s`, all {len(rules)} rules, 1,000 events/s",
        f"{len(delays)} of {fed}", f"{pick(0.5):.1f}", f"{pick(0.95):.1f}", f"{delays[-1]:.1f}",
        f"{trigger + 10}",
    ]]  # fmt: skip


def state_scaling(spark, entries: list[int]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The apply query alone, fed observation files written directly: first a batch that
    builds the state (``n`` entries: n/10 principals with 10 values each), then the same
    small batch for every size."""
    from loader.alerts.tables import create_alert_tables
    from loader.rules.validate import load_rules
    from loader.stream.apply import start_apply
    from loader.stream.checkpoint import OBSERVATIONS

    rules_dir = Path(tempfile.mkdtemp(prefix="tsa-rules-", dir=WORK))
    (rules_dir / "bench_profile.sql").write_text(PROFILE_RULE)
    rules, problems = load_rules([str(rules_dir)])
    assert not problems, problems
    rows = []
    for n in entries:
        checkpoint = WORK / f"state_checkpoint_{n}"
        shutil.rmtree(checkpoint, ignore_errors=True)
        database = f"bench_state_{n}"
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
        create_alert_tables(spark, database)
        observations = checkpoint / OBSERVATIONS

        def report(_line: str) -> None:  # timed here, around each run of the query
            return None

        principals = max(1, n // 10)
        _write_observations(spark, observations / "batch-000000000", 0, principals, 10, 0)
        started = time.perf_counter()
        query = start_apply(spark, rules, database, str(checkpoint), True, report)
        query.awaitTermination()
        build = time.perf_counter() - started
        small = []
        for batch in (1, 2, 3):  # 10,000 sightings of 1,000 principals, 1 new value each
            _write_observations(spark, observations / f"batch-{batch:09d}", batch,
                                1_000, 10, batch * 7919 % max(1, principals - 1_000))  # fmt: skip
            started = time.perf_counter()
            query = start_apply(spark, rules, database, str(checkpoint), True, report)
            query.awaitTermination()
            small.append(time.perf_counter() - started)
        rows.append([f"{n:,}", f"{build:.1f}", f"{sorted(small)[1]:.1f}"])
    base = float(rows[0][2])
    for row in rows:
        row.append(f"{float(row[2]) / base:.2f}x")
    return rows


def _write_observations(
    spark, folder: Path, batch: int, principals: int, values: int, offset: int
) -> None:  # type: ignore[no-untyped-def]
    """Observation rows of ``bench_profile``: each principal with ``values`` values (in a
    later batch, 9 known and 1 new), as the observe query writes them."""
    from loader.engine.sql import OBSERVATION_SCHEMA

    new = 1 if batch else 0
    frame = spark.sql(f"""
SELECT 'bench_profile' AS rule, principal AS key, principal AS entity, item AS value,
  eventTime, eventID, to_json(named_struct('principal', principal, 'item', item)) AS row,
  CAST(NULL AS TIMESTAMP) AS start, eventTime AS last, CAST(1 AS BIGINT) AS count,
  CAST({batch} AS BIGINT) AS batch,
  timestamp '2026-01-01 00:00:00' + make_interval(0, 0, 0, {batch}, 1, 0, 0) AS clock
FROM (
  SELECT principal,
    concat('v', CASE WHEN v < {values - new} THEN v ELSE v + 100 * {batch} END) AS item,
    timestamp '2026-01-01 00:00:00' + make_interval(0, 0, 0, {batch}, 0, 0, v) AS eventTime,
    concat('e', {batch}, '-', p, '-', v) AS eventID
  FROM (SELECT p, concat('arn:aws:iam::123456789012:user/u', p + {offset}) AS principal, v
        FROM range({principals}) AS r(p) LATERAL VIEW explode(sequence(0, {values - 1})) t AS v))
""")  # fmt: skip
    status = json.dumps({"events": principals * values, "files": 1, "newest": None,
                         "started": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                         .isoformat(), "errors": {}})  # fmt: skip
    frame = frame.unionByName(spark.createDataFrame(
        [("__batch", str(batch), None, None, dt.datetime(2026, 1, 1), "", status,
          None, None, None, batch, dt.datetime(2026, 1, 1 + batch, 1))],
        OBSERVATION_SCHEMA,
    ))  # fmt: skip
    tmp = folder.parent / f"_{folder.name}"
    frame.write.mode("overwrite").parquet(str(tmp))
    tmp.rename(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["throughput", "latency", "state", "all"])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--trigger", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=60, help="how long the writer feeds")
    parser.add_argument("--state-entries", type=int, default=10_000_000)
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    logs = reference_logs(args.events)
    spark, enrichment = session(args.driver_memory, logs)
    if args.part in ("throughput", "all"):
        rows = throughput(spark, enrichment, logs, args.events)
        print(f"\n{args.events:,} events, {len(log_files(logs))} files\n")
        header = ["what ran", "seconds", "vs detect", "cores", "events/s per core", "alerts"]
        print(markdown_table(header, rows) + "\n", flush=True)
    if args.part in ("latency", "all"):
        rows = latency(spark, enrichment, logs, args.trigger, args.seconds)
        header = ["what ran", "alerts timed", "median s", "p95 s", "max s", "target s"]
        print("\n" + markdown_table(header, rows) + "\n", flush=True)
    if args.part in ("state", "all"):
        rows = state_scaling(spark, [10_000, args.state_entries])
        header = ["profile entries in state", "building it s", "small batch s", "vs 10k"]
        print("\n" + markdown_table(header, rows) + "\n", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
