"""Find ../shared/corpus and lay its CloudTrail files out as CloudTrail writes them to S3."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CORPUS = Path(
    os.environ.get("TSA_CORPUS", Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus")
).resolve()
ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
ORG_ID = "o-a1b2c3d4e5"
FIRST_DAY = dt.date(2023, 1, 1)


def require_corpus() -> Path:
    if not (CORPUS / "cloudtrail").is_dir():
        pytest.skip(f"corpus not found at {CORPUS} (set TSA_CORPUS)")
    return CORPUS


def corpus_dir(name: str) -> Path:
    """A corpus folder such as 'geoip' or 'tor'; skips the test when the corpus is absent."""
    path = CORPUS / name
    if not path.is_dir():
        pytest.skip(f"corpus folder {path} not found (set TSA_CORPUS)")
    return path


def corpus_cloudtrail_files() -> list[Path]:
    """Every CloudTrail-format file of the corpus (not the derived indexes, not the CSV)."""
    root = require_corpus() / "cloudtrail"
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and (p.name.endswith(".json") or p.name.endswith(".json.gz"))
        and not p.name.endswith(".index.json")
    )


@dataclass
class Expected:
    """What an independent reading with Python's json module says the layout holds."""

    events: int = 0
    insight_events: int = 0
    invalid: list[str] = field(default_factory=list)  # arranged paths
    digests: list[str] = field(default_factory=list)
    by_path: dict[str, int] = field(default_factory=dict)


def count_with_json(data: bytes) -> tuple[int, int] | None:
    """(events, insight events) of a log file's bytes, None if it is not loadable JSON."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    records = doc.get("Records", []) if isinstance(doc, dict) else []
    insights = sum(1 for r in records if r.get("eventType") == "AwsCloudTrailInsight")
    return len(records) - insights, insights


def arrange_corpus(dest: Path) -> Expected:
    """Write every corpus CloudTrail file into ``dest`` in the S3 layout, one day per file.

    Digest samples go to CloudTrail-Digest, Insights samples to CloudTrail-Insight, everything
    else to CloudTrail; every fourth file uses the organization-trail layout. Files are gzipped
    as CloudTrail delivers them.
    """
    expected = Expected()
    for index, source in enumerate(corpus_cloudtrail_files()):
        data = source.read_bytes()
        if data[:2] != b"\x1f\x8b":
            data = gzip.compress(data, mtime=0)
        parts = source.relative_to(CORPUS / "cloudtrail").parts
        folder = {"digest": "CloudTrail-Digest", "insights": "CloudTrail-Insight"}.get(
            parts[0], "CloudTrail"
        )
        account = ACCOUNTS[index % len(ACCOUNTS)]
        region = REGIONS[index % len(REGIONS)]
        day = FIRST_DAY + dt.timedelta(days=index)
        org = [ORG_ID] if index % 4 == 3 else []
        tag = hashlib.sha1(str(source).encode()).hexdigest()[:16]
        name = f"{account}_{folder}_{region}_{day:%Y%m%d}T0000Z_{tag}.json.gz"
        target = dest.joinpath(
            "AWSLogs", *org, account, folder, region, f"{day:%Y}", f"{day:%m}", f"{day:%d}", name
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        counted = count_with_json(data)
        if folder == "CloudTrail-Digest":
            expected.digests.append(str(target))
        elif counted is None:
            expected.invalid.append(str(target))
        else:
            expected.events += counted[0]
            expected.insight_events += counted[1]
            expected.by_path[str(target)] = counted[0]
    return expected
