"""Where the time of a query over raw CloudTrail .json.gz goes, path by path.

    python -m bench.raw_read_paths [--events 1000000] [--glob '*/CloudTrail/*/2024/03/2[56]']

Each row reads the same files with one more piece of work than the cheapest, so the table shows
what keeping every event's raw JSON costs and what the alternatives would buy. Used to choose the
design of `cloudtrail_raw` + the `cloudtrail` view.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import cores, markdown_table, median_time, reference_logs
from bench.groupby_raw import spark_session
from loader.tables.cloudtrail_schema import EVENT_FIELDS, json_schema

FULL_TYPED = "Records array<struct<" + ",".join(f"{f.name}:{f.json_type}" for f in EVENT_FIELDS)
FULL_TYPED += ">>"
GROUP = "SELECT {col}, count(*) FROM {src} LATERAL VIEW explode(Records) x AS r GROUP BY 1"
PATHS = [
    ("gzip + text only (wholetext, no JSON)", "text", None, "SELECT sum(length(value)) FROM src"),
    (
        "JSON reader, only eventName typed (no raw JSON kept)",
        "json",
        "Records array<struct<eventName:string>>",
        GROUP.format(col="r.eventName", src="src"),
    ),
    (
        "JSON reader, every field typed (no raw JSON kept)",
        "json",
        FULL_TYPED,
        GROUP.format(col="r.eventName", src="src"),
    ),
    (
        "JSON reader, events as raw strings (parse only)",
        "json",
        "Records array<string>",
        "SELECT sum(size(Records)) FROM src",
    ),
    (
        "raw strings + from_json (the `cloudtrail` view's design)",
        "json",
        "Records array<string>",
        GROUP.format(col=f"from_json(r, '{json_schema(EVENT_FIELDS)}').eventName", src="src"),
    ),
    (
        "raw strings + get_json_object",
        "json",
        "Records array<string>",
        GROUP.format(col="get_json_object(r, '$.eventName')", src="src"),
    ),
    (
        "events as VARIANT + variant_get",
        "json",
        "Records array<variant>",
        GROUP.format(col="variant_get(r, '$.eventName', 'string')", src="src"),
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--glob", default="*/CloudTrail/*/2024/03/2[56]")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    threads = cores()
    files = str(reference_logs(args.events) / "AWSLogs" / args.glob)
    with tempfile.TemporaryDirectory() as tmp:
        spark = spark_session(Path(tmp), threads)
        events = (
            spark.read.schema("Records array<string>")
            .option("multiLine", "true")
            .json(files)
            .selectExpr("sum(size(Records))")
            .first()[0]
        )
        rows = []
        for name, fmt, schema, query in PATHS:
            reader = spark.read.option("multiLine", "true")
            if fmt == "text":
                df = reader.option("wholetext", "true").text(files)
            else:
                df = reader.schema(schema).json(files)
            df.createOrReplaceTempView("src")
            seconds, _ = median_time(lambda q=query: spark.sql(q).collect(), args.runs)
            rows.append([name, f"{seconds:.2f}", f"{events / seconds / threads:,.0f}"])
        spark.stop()
    print(f"\n{events:,} events ({files}), {threads} cores, median of {args.runs} runs\n")
    print(markdown_table(["read path", "seconds", "events/s per core"], rows))


if __name__ == "__main__":
    main()
