"""What `generate-sample` writes: its settings and their defaults (read by the config too)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleSpec:
    events: int = 20_000
    days: int = 7
    accounts: int = 2
    seed: int = 7
    events_per_file: int = 2_500
    end_date: str | None = None
    # 0: a day's events of a region fill files of events_per_file; N: as CloudTrail delivers,
    # one file per region per N minutes that had events, written a few minutes after them
    file_minutes: int = 0
