"""What coverage costs (issue 23): recording deliveries in create-hive-table, judging gaps,
reading trail stops, in detect and per live batch, each beside the same work without it.

Workload: a week of the sample delivered as CloudTrail does (``--file-minutes 15``: a file per
region per 15 minutes with events, ~4,000 files), generated once into bench/data/.

    python -m bench.coverage
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import DATA, markdown_table
from loader.sample.generate import SampleSpec, write_sample

SPEC = SampleSpec(events=50_000, days=7, seed=42, file_minutes=15)


def logs() -> Path:
    out = DATA / "coverage_50k_15min"
    if not (out / ".complete").exists():
        print(write_sample(str(out), SPEC).render())
        (out / ".complete").write_text("ok")
    return out


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    import loader.tables.create_cloudtrail as create
    from loader.cli import main as cli
    from loader.config import Settings
    from loader.coverage.deliveries import deliveries_table, judge_relation, trail_events
    from loader.coverage.gaps import GapSettings
    from loader.session import build_session
    from loader.tables.deliveries import record_frame

    root = logs()
    files = sum(1 for _ in (root / "AWSLogs").rglob("*.json.gz"))
    spark = build_session(
        Settings(conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"}),
        "bench-coverage",
    )
    spent: dict[str, float] = {}
    for name in ("record_files", "ensure_tables"):
        original = getattr(create, name)

        def wrapper(*args, _f=original, _n=name, **kwargs):  # type: ignore[no-untyped-def]
            seconds, result = timed(lambda: _f(*args, **kwargs))
            spent[_n] = spent.get(_n, 0.0) + seconds
            return result

        setattr(create, name, wrapper)
    db = f"benchcov{int(time.time())}"
    total, _ = timed(lambda: create.create_cloudtrail_tables(spark, str(root), db))
    recording = sum(spent.values())
    rows = [
        ["create-hive-table, all of it", f"{total:.1f}", ""],
        ["  of which recording deliveries (table, view, insert)", f"{recording:.1f}",
         f"{100 * recording / total:.0f}% of the command"],
    ]  # fmt: skip
    events, count = timed(lambda: spark.table(f"{db}.cloudtrail").count())
    judge, judgement = timed(lambda: judge_relation(spark, deliveries_table(db), GapSettings()))
    trails, found = timed(lambda: trail_events(spark, f"{db}.cloudtrail"))
    rows += [
        [f"count(*) over {db}.cloudtrail ({count:,} events): the events read at all",
         f"{events:.1f}", "competitor"],
        [f"judge gaps over {files:,} deliveries ({len(judgement.series)} series, "
         f"{len(judgement.gaps)} gaps)", f"{judge:.1f}", f"{100 * judge / events:.0f}% of a count"],
        [f"trail stops from the events ({len(found)} events)", f"{trails:.1f}",
         f"{100 * trails / events:.0f}% of a count"],
    ]  # fmt: skip
    from loader.enrichment import SAMPLE_FILES

    common = ["detect", "--database", db, "--until", "2024-04-01"]
    for key, flag in (("geoip_city_db", "--geoip-city-db"), ("geoip_asn_db", "--geoip-asn-db"),
                      ("tor_exit_list", "--tor-exit-list")):  # fmt: skip
        common += [flag, str(root / SAMPLE_FILES[key])]
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(2):  # alternated: neither pays the first run's warm-up alone
        runs["without"].append(timed(lambda: cli([*common, "--no-coverage"]))[0])
        runs["with"].append(timed(lambda: cli(common))[0])
    without, with_cov = min(runs["without"]), min(runs["with"])
    rows += [
        ["detect, bundled pack, --no-coverage (best of 2)", f"{without:.1f}", "competitor"],
        ["detect, bundled pack, with coverage (best of 2)", f"{with_cov:.1f}",
         f"{with_cov / without:.2f}x"],
    ]  # fmt: skip
    # a live batch: one new file's events recorded, then the gaps judged over every delivery
    batch = spark.table(f"{db}.cloudtrail").where("dt = '2024-03-31'").limit(50).cache()
    batch.count()
    record, _ = timed(
        lambda: record_frame(
            spark, db,
            batch.groupBy("source_file", "account", "region")
            .agg({"*": "count"}).selectExpr(
                "source_file AS path", "account", "region", "`count(1)` AS events",
                "CAST(NULL AS TIMESTAMP) AS newest"),
            "run",
        )
    )  # fmt: skip
    rows.append(["a live batch: record its files (the judgement runs beside the queries)",
                 f"{record:.1f}", "added to every batch"])  # fmt: skip
    print(markdown_table(["what", "seconds", "compared"], rows))
    spark.stop()


if __name__ == "__main__":
    main()
