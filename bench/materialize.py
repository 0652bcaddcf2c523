"""The same group-by on the raw view and on the materialized Parquet table, and DuckDB over the
same Parquet files, in one run; with the conversion rate of `materialize`.

    python -m bench.materialize [--events 1000000] [--runs 3]

The target (bench/README.md): >= 5M events/s per core on Parquet.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import cores, markdown_table, median_time, reference_logs
from bench.groupby_raw import QUERY, spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    threads = cores()
    root = reference_logs(args.events)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        from loader.tables.create_cloudtrail import create_cloudtrail_tables
        from loader.tables.materialize import materialize

        spark = spark_session(Path(tmp), threads)
        create_cloudtrail_tables(spark, str(root), "bench")
        report = materialize(spark, "bench")
        assert report.events == args.events, report.render()
        convert = report.seconds

        def count(table: str) -> Counter:
            return Counter(dict(spark.sql(QUERY.format(table=table)).collect()))

        raw_seconds, raw = median_time(lambda: count("bench.cloudtrail"), args.runs)
        rows.append(("this project: `cloudtrail` view (raw .json.gz)", raw_seconds, threads))
        pq_seconds, pq = median_time(lambda: count("bench.cloudtrail_parquet"), args.runs)
        rows.append(("this project: `cloudtrail_parquet` (materialize)", pq_seconds, threads))
        assert pq == raw, "the Parquet table disagrees with the raw view"
        location = Path(tmp) / "warehouse" / "bench.db" / "cloudtrail_parquet"
        spark.stop()

        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")

        def duck() -> Counter:
            return Counter(dict(con.execute(
                f"SELECT eventName, count(*) FROM read_parquet('{location}/**/*.parquet') "
                "GROUP BY 1"
            ).fetchall()))  # fmt: skip

        duck_seconds, duck_answer = median_time(duck, args.runs)
        assert duck_answer == raw, "DuckDB disagrees"
        rows.append((f"DuckDB {duckdb.__version__} over the same Parquet files", duck_seconds,
                     threads))  # fmt: skip
    print(
        f"\n{args.events:,} events, {threads} cores, median of {args.runs} runs; all agree.\n"
        f"`materialize` converted them in {convert:.1f} s "
        f"({args.events / convert / threads:,.0f} events/s per core)\n"
    )
    print(markdown_table(
        ["events per eventName", "seconds", "cores", "events/s per core"],
        [[n, f"{s:.2f}", str(c), f"{args.events / s / c:,.0f}"] for n, s, c in rows],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
