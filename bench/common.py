"""Shared helpers for benchmarks: the reference data set, timing, markdown output."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from loader.sample.generate import SampleSpec, write_sample

DATA = Path(__file__).resolve().parent / "data"


def reference_logs(events: int, seed: int = 42) -> Path:
    """The reference workload of bench/README.md (2,500 events per file), generated once."""
    out = DATA / f"events_{events}_seed{seed}"
    marker = out / ".complete"
    if not marker.exists():
        started = time.monotonic()
        summary = write_sample(
            str(out),
            SampleSpec(events=events, days=7, accounts=2, seed=seed, events_per_file=2_500),
        )
        print(f"generated {summary.render()} in {time.monotonic() - started:.0f} s")
        marker.write_text("ok")
    if not (out / "geoip").is_dir():  # sets generated before the sample had enrichment files
        from loader.sample.enrichment_data import write_enrichment_data

        write_enrichment_data(str(out))
    return out


def log_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json.gz"))


def median_time(
    fn: Callable[[], object], runs: int = 3, warmup: bool = True
) -> tuple[float, object]:
    """Median wall time of ``runs`` calls (after one untimed warm-up) and the last result."""
    if warmup:
        fn()
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
