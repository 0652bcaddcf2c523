"""Group-by over `security.cloudtrail` (raw .json.gz) against DuckDB and plain Python.

    python -m bench.groupby_raw [--events 1000000] [--runs 3]

Every contender computes the same answer (events per eventName) over the same files, in the
same run; the table reports events/s per core, the figure the targets in bench/README.md use.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import cores, log_files, markdown_table, median_time, reference_logs

QUERY = "SELECT eventName, count(*) AS n FROM {table} GROUP BY eventName"


def spark_session(workdir: Path, threads: int):
    from loader.config import Settings
    from loader.session import build_session

    return build_session(
        Settings(
            master=f"local[{threads}]",
            conf={
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": str(threads),
                "spark.driver.memory": "4g",
                "spark.sql.warehouse.dir": str(workdir / "warehouse"),
                "spark.hadoop.javax.jdo.option.ConnectionURL": (
                    f"jdbc:derby:;databaseName={workdir}/metastore_db;create=true"
                ),
                "spark.driver.extraJavaOptions": f"-Dderby.system.home={workdir}",
            },
        ),
        "bench-groupby",
    )


def python_loop(files: list[Path], loads) -> Counter:
    counts: Counter = Counter()
    for path in files:
        for record in loads(gzip.decompress(path.read_bytes()))["Records"]:
            counts[record.get("eventName")] += 1
    return counts


def gzip_only(files: list[Path]) -> int:
    return sum(len(gzip.decompress(p.read_bytes())) for p in files)


def duckdb_groupby(root: Path, threads: int) -> Counter:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    rows = con.execute(
        "SELECT e.eventName, count(*) FROM (SELECT unnest(Records) AS e FROM read_json("
        f"'{root}/**/*.json.gz', columns = {{'Records': 'STRUCT(eventName VARCHAR)[]'}}, "
        "format = 'auto', maximum_object_size = 268435456)) GROUP BY 1"
    ).fetchall()
    return Counter(dict(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    threads = cores()
    root = reference_logs(args.events)
    files = log_files(root)
    size = sum(p.stat().st_size for p in files)
    results: list[tuple[str, float, int, Counter | None]] = []

    with tempfile.TemporaryDirectory() as tmp:
        from loader.tables.create_cloudtrail import create_cloudtrail_tables

        spark = spark_session(Path(tmp), threads)
        started = time.perf_counter()
        report = create_cloudtrail_tables(spark, str(root), "bench")
        create_seconds = time.perf_counter() - started
        assert report.events_new == args.events, report.render()

        def view() -> Counter:
            return Counter(dict(spark.sql(QUERY.format(table="bench.cloudtrail")).collect()))

        seconds, answer = median_time(view, args.runs)
        results.append(
            ("this project: `security.cloudtrail` view (raw .json.gz)", seconds, threads, answer)
        )
        spark.stop()

    seconds, answer = median_time(lambda: duckdb_groupby(root, threads), args.runs)
    results.append(
        (f"DuckDB {__import__('duckdb').__version__} read_json + unnest", seconds, threads, answer)
    )
    seconds, answer = median_time(lambda: python_loop(files, json.loads), args.runs, False)
    results.append(("plain Python gzip + json.loads loop", seconds, 1, answer))
    try:
        import orjson

        seconds, answer = median_time(lambda: python_loop(files, orjson.loads), args.runs, False)
        results.append(("plain Python gzip + orjson loop", seconds, 1, answer))
    except ImportError:
        pass
    seconds, _ = median_time(lambda: gzip_only(files), args.runs, False)
    results.append(("gzip decompression alone (upper bound, no parsing)", seconds, 1, None))

    reference = results[0][3]
    for name, _, _, answer in results[1:]:
        if answer is not None and answer != reference:
            raise SystemExit(f"{name} disagrees with Spark: {answer.most_common(3)}")
    print(
        f"\n{args.events:,} events in {len(files)} files ({size / 1e6:.0f} MB gzipped), "
        f"{threads} cores, median of {args.runs} runs; every contender gave the same counts.\n"
        f"`create-hive-table` on this data (incl. checking every file): {create_seconds:.1f} s "
        f"({args.events / create_seconds / threads:,.0f} events/s per core)\n"
    )
    rows = [
        [name, f"{seconds:.2f}", str(used), f"{args.events / seconds / used:,.0f}"]
        for name, seconds, used, _ in results
    ]
    print(
        markdown_table(
            [
                "how the same events were counted by eventName",
                "seconds",
                "cores",
                "events/s per core",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
