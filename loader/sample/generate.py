"""`generate-sample`: realistic CloudTrail logs in the real S3 layout and file naming,
deterministic per seed: normal life (:mod:`loader.sample.events`) for every day, and the
attack story (:mod:`loader.sample.attack`) on the last one."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from loader.sample.attack import ATTACK_NEW_USER, ATTACK_USER, attack_events
from loader.sample.catalog import DEFAULT_END, TOR_EXIT_IP
from loader.sample.events import World, normal_event
from loader.sample.spec import SampleSpec

__all__ = [
    "ATTACK_NEW_USER", "ATTACK_USER", "TOR_EXIT_IP", "SampleSpec", "SampleSummary", "write_sample",
]  # fmt: skip


@dataclass
class SampleSummary:
    out: str
    files: int = 0
    events: int = 0
    accounts: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    attack_events: int = 0
    enrichment: list[str] = field(default_factory=list)

    def render(self) -> str:
        text = (
            f"wrote {self.events:,} events in {self.files:,} files under {self.out}/AWSLogs "
            f"(accounts {', '.join(self.accounts)}; {self.days[0]} .. {self.days[-1]}; "
            f"{self.attack_events} attack-story events on the last day)"
        )
        if self.enrichment:
            text += "\nand sample GeoIP databases and a Tor exit list: " + ", ".join(
                self.enrichment
            )
        return text


def _file_name(account: str, region: str, last_time: str, world: World, delay: float = 0) -> str:
    written = dt.datetime.fromisoformat(last_time.replace("Z", "+00:00"))
    written += dt.timedelta(seconds=delay)
    stamp = written.strftime("%Y%m%dT%H%MZ")  # when the file was written, to the minute
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    suffix = "".join(world.rng.choice(alphabet) for _ in range(16))
    return f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz"


def _files(
    events: list[dict[str, Any]], spec: SampleSpec, world: World
) -> list[tuple[list[dict[str, Any]], float]]:
    """A bucket's events (in time order) cut into files, each with its delivery delay (s)."""
    if not spec.file_minutes:
        size = spec.events_per_file
        return [(events[i : i + size], 0.0) for i in range(0, len(events), size)]
    windows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        moment = dt.datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
        windows[int(moment.timestamp()) // (spec.file_minutes * 60)].append(event)
    files = []
    for _, window in sorted(windows.items()):
        for i in range(0, len(window), spec.events_per_file):
            # CloudTrail writes a file a few minutes after its newest event
            files.append((window[i : i + spec.events_per_file], world.rng.uniform(60, 300)))
    return files


def write_sample(out: str, spec: SampleSpec) -> SampleSummary:
    """Generate the sample and write it under ``out/AWSLogs/...``; returns what was written."""
    if spec.events < 1 or spec.days < 1 or spec.accounts < 1 or spec.events_per_file < 1:
        raise ValueError("--events, --days, --accounts and --events-per-file must be positive")
    if spec.file_minutes < 0:
        raise ValueError("--file-minutes must be 0 (files by size) or a number of minutes")
    world = World(spec)
    try:
        end = dt.date.fromisoformat(spec.end_date or DEFAULT_END)
    except ValueError as exc:
        raise ValueError(f"--end-date {spec.end_date!r}: expected a day as YYYY-MM-DD") from exc
    days = [end - dt.timedelta(days=spec.days - 1 - i) for i in range(spec.days)]
    buckets: dict[tuple[str, str, dt.date], list[dict[str, Any]]] = defaultdict(list)
    attack = attack_events(world, world.accounts[0], days[-1])
    for event in attack:
        buckets[(world.accounts[0], event["awsRegion"], days[-1])].append(event)
    for _ in range(max(spec.events - len(attack), 0)):
        account = world.rng.choice(world.accounts)
        day = world.rng.choice(days)
        event = normal_event(world, account, day)
        buckets[(account, event["awsRegion"], day)].append(event)
    summary = SampleSummary(
        out=out,
        accounts=world.accounts,
        days=[d.isoformat() for d in days],
        attack_events=len(attack),
    )
    from loader.sample.enrichment_data import write_enrichment_data

    summary.enrichment = write_enrichment_data(out, days[-1])
    for (account, region, day), events in sorted(buckets.items()):
        events.sort(key=lambda e: e["eventTime"])
        folder = os.path.join(
            out, "AWSLogs", account, "CloudTrail", region, f"{day:%Y}", f"{day:%m}", f"{day:%d}"
        )
        os.makedirs(folder, exist_ok=True)
        for chunk, delay in _files(events, spec, world):
            name = _file_name(account, region, chunk[-1]["eventTime"], world, delay)
            payload = json.dumps({"Records": chunk}, separators=(",", ":")).encode()
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(gzip.compress(payload, compresslevel=6, mtime=0))
            summary.files += 1
            summary.events += len(chunk)
    return summary
