"""Hostile log files made from the real corpus (fixed seed, bounded): every file is either
loaded with all its events or quarantined with a reason, and nothing raises.

Mutations: truncation at a random offset, flipped bytes (compressed and plain), wrong JSON
types for top-level fields, huge strings, deep nesting, duplicate keys, invalid UTF-8 inside a
string, elements of Records that are not events.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path

import pytest

from loader.tables.filecheck import LOADED, PARTIAL, QUARANTINED, check_bytes
from tests.corpus import corpus_cloudtrail_files

SEED = 20261130
VARIANTS = 120
ACCOUNT = "123456789012"
WRONG_TYPES = (123, "text", None, True, [], {"x": 1}, 1.5)


def _sources() -> list[dict]:
    """The corpus's CloudTrail documents with a few events each (digests and invalid files
    are left to the corpus tests)."""
    documents = []
    for path in corpus_cloudtrail_files():
        if "digest" in path.parts or "insights" in path.parts:
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            document = json.loads(data)
        except ValueError:
            continue
        records = document.get("Records") if isinstance(document, dict) else None
        if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
            documents.append({"Records": records[:20]})
    return documents


def _mutate(rng: random.Random, document: dict) -> bytes:
    """One hostile file's bytes, gzipped as CloudTrail writes them unless the mutation is of
    the compressed bytes themselves."""
    records = json.loads(json.dumps(document["Records"]))
    kind = rng.choice(
        ["truncate", "flip_gz", "flip_json", "wrong_type", "huge", "deep", "duplicate_key",
         "bad_utf8", "junk_elements", "records_type"]
    )  # fmt: skip
    text = json.dumps({"Records": records}).encode()
    if kind == "truncate":
        return gzip.compress(text[: rng.randrange(1, len(text))], mtime=0)
    if kind == "flip_gz":
        data = bytearray(gzip.compress(text, mtime=0))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(10, len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "flip_json":
        data = bytearray(text)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return gzip.compress(bytes(data), mtime=0)
    record = rng.choice(records)
    if kind == "wrong_type":
        record[rng.choice(sorted(record))] = rng.choice(WRONG_TYPES)
    elif kind == "huge":
        record["userAgent"] = "A" * rng.choice((100_000, 2_000_000))
    elif kind == "deep":
        depth = rng.choice((50, 500, 5_000))
        nested = "[" * depth + "]" * depth
        raw = json.dumps({"Records": records}).replace('"Records": [', f'"Records": [{nested}, ', 1)
        return gzip.compress(raw.encode(), mtime=0)
    elif kind == "duplicate_key":
        raw = json.dumps({"Records": records})
        raw = raw.replace('"eventName": ', '"eventName": "Dup", "eventName": ', 1)
        return gzip.compress(raw.encode(), mtime=0)
    elif kind == "bad_utf8":
        raw = json.dumps({"Records": records}).encode()
        at = raw.find(b'"eventName": "') + len(b'"eventName": "')
        return gzip.compress(raw[:at] + b"\xff\xfe" + raw[at:], mtime=0)
    elif kind == "junk_elements":
        records.insert(rng.randrange(len(records) + 1), rng.choice(WRONG_TYPES))
    elif kind == "records_type":
        return gzip.compress(json.dumps({"Records": rng.choice(WRONG_TYPES)}).encode(), mtime=0)
    return gzip.compress(json.dumps({"Records": records}).encode(), mtime=0)


def hostile_files() -> list[bytes]:
    rng = random.Random(SEED)
    sources = _sources()
    return [_mutate(rng, rng.choice(sources)) for _ in range(VARIANTS)]


def python_events(data: bytes) -> int | None:
    """An independent count: the event objects Python's json module reads in the file, or
    None when it cannot read the file as a CloudTrail log."""
    try:
        text = gzip.decompress(data).decode("utf-8")
        document = json.loads(text)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError, RecursionError):
        return None
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list):
        return None
    return sum(1 for r in records if isinstance(r, dict))


def test_every_hostile_file_is_loaded_whole_or_quarantined_with_a_reason():
    outcomes = []
    for data in hostile_files():
        result = check_bytes(data, "x.json.gz")  # never raises
        expected = python_events(data)
        if result.status in (LOADED, PARTIAL):
            assert result.events + result.insight_events == expected
        else:
            assert result.status == QUARANTINED and result.reason
            assert not expected  # nothing Python could read as events is turned away
        outcomes.append(result.status)
    assert {LOADED, PARTIAL, QUARANTINED} <= set(outcomes)  # the mix covers every outcome


@pytest.mark.spark
def test_create_hive_table_loads_or_quarantines_every_hostile_file(spark, tmp_path, capsys):
    from loader.cli import main
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    folder = tmp_path / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2024" / "05" / "01"
    folder.mkdir(parents=True)
    expected: dict[str, int] = {}  # file -> its events (Insights events go elsewhere)
    readable = set()
    for n, data in enumerate(hostile_files()):
        name = f"{ACCOUNT}_CloudTrail_us-east-1_20240501T0000Z_{n:04d}.json.gz"
        (folder / name).write_bytes(data)
        result = check_bytes(data, name)
        if result.status in (LOADED, PARTIAL):
            readable.add(name)
            if result.events:
                expected[name] = result.events
    report = create_cloudtrail_tables(spark, str(tmp_path), "fuzz")
    rows = spark.sql(
        "SELECT source_file, count(*) AS n, count(eventTime) + count(eventName) AS typed "
        "FROM fuzz.cloudtrail GROUP BY source_file"
    ).collect()
    loaded = {Path(r.source_file).name: r.n for r in rows}
    assert loaded == expected  # every loadable file whole; nothing from the quarantined ones
    assert all(r.typed > 0 for r in rows)  # no file's rows are all NULLs
    from loader.batch.detect import source_events  # `detect --source`: the files read directly

    direct = source_events(spark, str(tmp_path)).groupBy("source_file").count().collect()
    assert {Path(r.source_file).name: r["count"] for r in direct} == expected
    quarantined = {Path(p).name for p, _ in report.quarantined_new}
    assert quarantined - readable == {p.name for p in folder.iterdir()} - readable
    # `run` reads them as `detect --source` does, and goes on
    capsys.readouterr()
    rule = str(Path(__file__).resolve().parents[1] / "sql" / "alerts" / "root_console_login.sql")
    run = ["run", "--source", str(tmp_path), "--once", "--database", "fuzzrun", "--rules", rule,
           "--checkpoint", str(tmp_path.parent / f"{tmp_path.name}-ck")]  # fmt: skip
    assert main(run) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    assert f"batch 0: events {sum(expected.values()):,}, files {len(expected)}, " in printed.out


# --- S3 server access log lines -----------------------------------------------------------------


def hostile_access_lines() -> list[str]:
    """Real access log lines (three format generations) with one mutation each."""
    from tests.corpus import corpus_dir

    real = [
        line
        for path in sorted(corpus_dir("s3-access-logs").glob("*.log"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    rng = random.Random(SEED)
    lines = list(real)  # every real line as it is, then mutated copies
    for _ in range(VARIANTS):
        line = rng.choice(real)
        kind = rng.choice(["cut", "drop_field", "quote", "bracket", "huge", "junk", "tab"])
        fields = line.split(" ")
        if kind == "cut":
            line = line[: rng.randrange(1, len(line))]
        elif kind == "drop_field":
            del fields[rng.randrange(len(fields))]
            line = " ".join(fields)
        elif kind == "quote":
            at = rng.randrange(len(line))
            line = line[:at] + '"' + line[at:]
        elif kind == "bracket":
            line = line.replace("[", "", 1)
        elif kind == "huge":
            fields[rng.randrange(len(fields))] = "x" * 200_000
            line = " ".join(fields)
        elif kind == "junk":
            line = "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
        else:
            line = line.replace(" ", "\t", 1)
        if line.strip():
            lines.append(line)
    return lines


@pytest.mark.spark
def test_every_hostile_access_log_line_is_typed_or_listed_as_unparsed(spark, tmp_path):
    from loader.tables.create_s3_access import create_s3_access_tables
    from loader.tables.s3_access_ddl import parse_line

    lines = hostile_access_lines()
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "2024-05-01-10-00-00-0A1B2C3D4E5F6A7B").write_text("\n".join(lines) + "\n")
    create_s3_access_tables(spark, str(folder), "fuzz_s3")
    typed = spark.table("fuzz_s3.s3_access_logs").count()
    unparsed = spark.table("fuzz_s3.s3_access_logs_unparsed").collect()
    assert typed + len(unparsed) == len(lines)  # every line is somewhere
    assert typed == sum(1 for line in lines if parse_line(line) is not None)
    assert all(row.reason and row.file for row in unparsed)
    assert typed > len(lines) // 3 and unparsed  # both kinds in the mix
