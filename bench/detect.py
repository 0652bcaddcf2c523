"""`detect` with the bundled rule pack over the reference events: events/s per core, and how
the cost grows with the number of rules (1, 10, all).

Each row is one whole `detect` call as the command runs it: read and type the raw .json.gz
logs (the `--source` path), keep the events in memory, evaluate the rules, write the new alerts
to `bench_detect.alerts`. The data are the reference 1,000,000 events of PERFORMANCE.md (seven
days, so the profiles compute their state but are still learning), with the sample's GeoIP
databases and Tor list.

Competitor, same run: the plain-Python loop (gzip + json.loads, one core) evaluating the
one-rule case's predicate (root console sign-ins) over the same files, the floor for any tool
that reads these logs in Python.

    python -m bench.detect [--events 1000000] [--runs 1] [--driver-memory 8g]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

from bench.common import DATA, cores, log_files, markdown_table, median_time, reference_logs

ONE = ["root_console_login"]
# a mix like a real deployment's: stateless alerts, a threshold rule, GeoIP/Tor, profiles
TEN = [
    "root_console_login", "cloudtrail_logging_tampered", "iam_access_key_created",
    "security_group_opened_to_world", "s3_bucket_made_public", "unauthorized_api_calls_burst",
    "tor_exit_node_activity", "new_country_for_principal", "new_access_key",
    "new_sensitive_api_for_principal",
]  # fmt: skip


def python_root_logins(root) -> int:
    found = 0
    for path in log_files(root):
        with gzip.open(path, "rb") as handle:
            for event in json.load(handle).get("Records", []):
                identity = event.get("userIdentity") or {}
                response = event.get("responseElements") or {}
                if (
                    event.get("eventName") == "ConsoleLogin"
                    and identity.get("type") == "Root"
                    and isinstance(response, dict)
                    and response.get("ConsoleLogin") == "Success"
                ):
                    found += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()

    from loader.config import resolve
    from loader.enrichment import enriched_session, with_sample_sources
    from loader.rules.detect import detect, source_events
    from loader.rules.validate import load_valid_rules

    logs = reference_logs(args.events)
    work = DATA / "detect_work"  # the bench's own metastore and warehouse
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    settings = resolve(None, {"conf": [f"spark.driver.memory={args.driver_memory}"]})
    with_sample_sources(settings, str(logs))
    spark, enrichment = enriched_session(settings, "bench detect")
    spark.sql("DROP DATABASE IF EXISTS bench_detect CASCADE")
    rules = load_valid_rules([])
    by_name = {rule.name: rule for rule in rules}
    sets = [("1", [by_name[n] for n in ONE]), ("10", [by_name[n] for n in TEN])]
    sets.append((f"all {len(rules)}", rules))
    n_cores = cores()
    rows, base = [], None
    for label, chosen in sets:
        print(f"detect with {label} rule(s) ...", flush=True)

        def run(chosen=chosen):
            spark.sql("DROP TABLE IF EXISTS bench_detect.alerts")
            events = source_events(spark, str(logs / "AWSLogs"))
            return detect(spark, chosen, events, "bench_detect", enrichment=enrichment)

        seconds, report = median_time(run, runs=args.runs, warmup=label == "1")
        assert not report.failed, report.render()
        base = seconds if base is None else base
        per_rule = "-" if len(chosen) == 1 else f"{(seconds - base) / (len(chosen) - 1):.2f}"
        rows.append([
            f"this project: `detect`, {label} rule(s)", f"{seconds:.1f}", str(n_cores),
            f"{report.events / seconds / n_cores:,.0f}", per_rule, f"{report.added:,}",
        ])  # fmt: skip
        events_count = report.events
    print("plain Python loop, 1 rule ...", flush=True)
    started = time.perf_counter()
    found = python_root_logins(logs)
    seconds = time.perf_counter() - started
    rows.append([
        "plain Python gzip + json.loads loop, 1 rule (root console sign-ins)", f"{seconds:.1f}",
        "1", f"{events_count / seconds:,.0f}", "-", f"{found:,} matching events",
    ])  # fmt: skip
    print()
    print(f"{events_count:,} events, {len(log_files(logs))} files, median of {args.runs} run(s)")
    print()
    header = ["what ran", "seconds", "cores", "events/s per core", "s per extra rule", "alerts"]
    print(markdown_table(header, rows))
    spark.stop()


if __name__ == "__main__":
    main()
