"""Baseline rules: what the five bundled baselines add to the rule pack, and what a runner's
batch costs as the baselines' state grows.

- **pack**: `detect` over the reference events (1M) with the bundled alerts and profiles, then
  with the five baselines added (the issue's target: within 1.2x), in the same run, after one
  untimed warm-up;
- **state**: the apply query alone (fed observation files as the observe query writes them):
  first the state of N entities over 30 days of hourly buckets (each entity active at 10:00
  every third day: 10 counts in state; every bucket judged, the clock moved on a day), then,
  timed, a batch of 1,000 of them acting in a new hour, and the batch after it, whose clock
  closes that hour (their timeouts fire, the buckets are judged against their history), for
  N = 1,000 and N = 100,000 (the issue's target: within 2x).

    python -m bench.baselines [--part pack|state|all] [--events 1000000] [--entities 1000,100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import DATA, cores, log_files, markdown_table, median_time, reference_logs

WORK = DATA / "baselines_work"
RULE = """/*
name: bench_baseline
kind: baseline
description: bench: refusals per principal per hour
severity: low
entity: principal
top: item
*/
SELECT eventTime, eventID, userIdentity.arn AS principal, eventName AS item FROM cloudtrail
"""
DAY0 = dt.datetime(2026, 1, 1)


def session(driver_memory: str, logs: Path | None = None):  # type: ignore[no-untyped-def]
    from loader.config import resolve
    from loader.enrichment import enriched_session, with_sample_sources

    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)  # the bench's own metastore and warehouse
    settings = resolve(None, {"conf": [f"spark.driver.memory={driver_memory}"]})
    if logs is not None:
        with_sample_sources(settings, str(logs))
    return enriched_session(settings, "bench baselines")


def pack(spark, enrichment, logs: Path, runs: int) -> tuple[list[list[str]], list[str]]:  # type: ignore[no-untyped-def]
    from loader.batch.detect import detect, source_events
    from loader.engine import timing
    from loader.rules.validate import load_valid_rules

    rules = load_valid_rules([])
    without = [r for r in rules if r.kind != "baseline"]
    sets = [(f"bundled alerts and profiles ({len(without)})", without),
            (f"the same + 5 baselines ({len(rules)})", rules)]  # fmt: skip
    rows, phases, base = [], [], None
    for label, chosen in sets:
        print(f"detect with {label} ...", flush=True)

        def run(chosen=chosen):  # type: ignore[no-untyped-def]
            timing.clear()
            spark.sql("DROP TABLE IF EXISTS bench_baselines.alerts")
            events = source_events(spark, str(logs / "AWSLogs"))
            return detect(spark, chosen, events, "bench_baselines", enrichment=enrichment)

        seconds, report = median_time(run, runs=runs, warmup=base is None)
        assert not report.failed, report.render()
        base = seconds if base is None else base
        spikes = {r.name for r in chosen if r.kind == "baseline"}
        baseline_alerts = sum(s.alerts for s in report.summaries if s.rule in spikes)
        rows.append([label, f"{seconds:.1f}", f"{seconds / base:.2f}x",
                     f"{report.events / seconds / cores():,.0f}", f"{report.added:,}",
                     str(baseline_alerts)])  # fmt: skip
        phases.append(f"- {label}: {timing.render()}")
    return rows, phases


def _observations(
    spark, folder: Path, batch: int, entities: int, hours: list[int], offset: int = 0
) -> None:  # type: ignore[no-untyped-def]
    """Observation rows of ``bench_baseline`` as the observe query writes them: each entity
    with 5 rows in each of ``hours`` (hours since DAY0), the clock at the newest of them."""
    from loader.engine.sql import OBSERVATION_SCHEMA

    clock = DAY0 + dt.timedelta(hours=max(hours), minutes=59)
    hours_sql = ", ".join(str(h) for h in hours)
    frame = spark.sql(f"""
SELECT 'bench_baseline' AS rule, principal AS key, principal AS entity, 'ListUsers' AS value,
  eventTime, CAST(NULL AS STRING) AS eventID, CAST(NULL AS STRING) AS row,
  CAST(NULL AS TIMESTAMP) AS start, eventTime + INTERVAL 50 MINUTES AS last,
  CAST(5 AS BIGINT) AS count, CAST({batch} AS BIGINT) AS batch,
  timestamp '{clock:%Y-%m-%d %H:%M:%S}' AS clock
FROM (
  SELECT concat('arn:aws:iam::123456789012:user/u', p + {offset}) AS principal,
    timestamp '{DAY0:%Y-%m-%d %H:%M:%S}' + make_interval(0, 0, 0, 0, h, 1, 0) AS eventTime
  FROM range({entities}) AS r(p) LATERAL VIEW explode(array({hours_sql})) t AS h)
""")  # fmt: skip
    status = json.dumps({"events": entities * len(hours) * 5, "files": 1, "newest": None,
                         "started": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                         .isoformat(), "errors": {}})  # fmt: skip
    frame = frame.unionByName(spark.createDataFrame(
        [("__batch", str(batch), None, None, clock, "", status, None, None, None, batch, clock)],
        OBSERVATION_SCHEMA,
    ))  # fmt: skip
    tmp = folder.parent / f"_{folder.name}"
    frame.write.mode("overwrite").parquet(str(tmp))
    tmp.rename(folder)


def state(spark, sizes: list[int]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    from loader.alerts.tables import create_alert_tables
    from loader.rules.validate import load_rules
    from loader.stream.apply import start_apply
    from loader.stream.checkpoint import OBSERVATIONS

    rules_dir = Path(tempfile.mkdtemp(prefix="tsa-rules-", dir=WORK))
    (rules_dir / "bench_baseline.sql").write_text(RULE)
    rules, problems = load_rules([str(rules_dir)])
    assert not problems, problems
    month = [d * 24 + 10 for d in range(0, 30, 3)]  # 10:00 every third day for 30 days
    rows = []
    for n in sizes:
        checkpoint = WORK / f"state_{n}"
        shutil.rmtree(checkpoint, ignore_errors=True)
        database = f"bench_baseline_{n}"
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
        create_alert_tables(spark, database)
        observations = checkpoint / OBSERVATIONS

        def apply(database: str = database, checkpoint: Path = checkpoint) -> float:
            started = time.perf_counter()
            start_apply(
                spark, rules, database, str(checkpoint), True, lambda _: None
            ).awaitTermination()
            return time.perf_counter() - started

        def batch(
            number: int, entities: int, hours: list[int], offset: int = 0,
            observations: Path = observations,
        ) -> None:  # fmt: skip
            folder = observations / f"batch-{number:09d}"
            _observations(spark, folder, number, entities, hours, offset)

        batch(0, n, month)
        build = apply()
        # a marker entity moves the clock a day on: every entity's last hour closes and is
        # judged (not timed); each key then waits only for its state to age out
        batch(1, 1, [31 * 24], 9_000_000)
        build += apply()
        # timed: 1,000 of the entities act at 10:00, then a marker closes that hour
        batch(2, 1_000, [32 * 24 + 10], max(0, n // 2 - 500))
        new_hour = apply()
        batch(3, 1, [32 * 24 + 12], 9_000_000)
        closing = apply()
        spark.catalog.refreshTable(f"{database}.profile_baseline_log")
        judged = spark.table(f"{database}.profile_baseline_log").count()
        rows.append([f"{n:,}", f"{n * len(month):,}", f"{build:.1f}", f"{new_hour:.1f}",
                     f"{closing:.1f}", f"{judged:,}"])  # fmt: skip
    base_new, base_close = float(rows[0][3]), float(rows[0][4])
    for row in rows:
        row += [f"{float(row[3]) / base_new:.2f}x", f"{float(row[4]) / base_close:.2f}x"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["pack", "state", "all"])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--entities", default="1000,100000")
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    logs = reference_logs(args.events)
    spark, enrichment = session(args.driver_memory, logs)
    if args.part in ("pack", "all"):
        rows, phases = pack(spark, enrichment, logs, args.runs)
        print(f"\n{args.events:,} events, {len(log_files(logs))} files, {cores()} cores, "
              f"median of {args.runs} run(s) after a warm-up\n")  # fmt: skip
        print(markdown_table(["`detect` with", "seconds", "vs first row", "events/s per core",
                              "alerts", "baseline alerts"], rows))  # fmt: skip
        print("\nwhere the time went:\n" + "\n".join(phases))
    if args.part in ("state", "all"):
        sizes = [int(n) for n in args.entities.split(",")]
        rows = state(spark, sizes)
        print()
        print(markdown_table(["entities", "bucket counts in state", "building it (s)",
                              "batch: 1,000 entities' new hour (s)",
                              "batch closing those hours (s)", "buckets judged",
                              "new hour vs first", "closing vs first"], rows))  # fmt: skip
    spark.stop()


if __name__ == "__main__":
    main()
