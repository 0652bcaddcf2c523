"""What the rules remember between batches of events.

`detect` sees the whole history as one batch; `run` sees it batch by batch. For each key (rule
and entity, or rule and dedup key) the step (:mod:`loader.engine.step`) keeps just enough state
that, fed the same events in time order, it raises the same alerts however they are batched:

- profiles: when the entity was first seen (its learning starts there) and, per value, first
  seen, last seen and how often; a value not seen for ``expire`` is forgotten;
- thresholds: the entity's event times within the last ``window``;
- dedup: when the last alert of each dedup key was kept.

These are plain Python objects, so the Spark layer can keep them in a state store (one per key)
and tests can check the logic without a JVM.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RECENT_VALUES = 5


@dataclass
class Seen:
    first: dt.datetime
    last: dt.datetime
    count: int = 1


@dataclass
class ProfileState:
    """One entity of one profile rule (for an account-wide profile, the profile itself)."""

    start: dt.datetime | None = None
    values: dict[str, Seen] = field(default_factory=dict)

    def observe(
        self,
        time: dt.datetime,
        value: str | None,
        learning: float,
        expire: float,
        last: dt.datetime | None = None,
        count: int = 1,
    ) -> dict[str, Any] | None:
        """Take one row of the rule's result; the alert's details when it alerts.

        Rows come in (eventTime, eventID) order within a batch. A row may stand for ``count``
        sightings of the value from ``time`` to ``last`` (the runner sends one row per value
        and day: only the first sighting of a day can alert when ``expire`` is a day or more).
        A row with no value starts the entity's learning but is no observation. A late row
        (older than what the state has seen) never alerts for a value already known, so late
        delivery cannot add alerts that a time-ordered run would not raise; it can move the
        entity's start back."""
        if self.start is None or time < self.start:
            self.start = time
        if value is None:
            return None
        seen = self.values.get(value)
        previous = seen.last if seen else None
        alert = None
        fresh = previous is None or (time - previous).total_seconds() > expire
        if fresh and (time - self.start).total_seconds() >= learning:
            others = sorted(
                ((s.first, v) for v, s in self.values.items() if v != value and s.first < time),
                reverse=True,
            )
            alert = {
                "first_time_seen": previous is None,
                "last_seen_before": previous,
                "values_before": len(others),
                "recent_values": [v for _, v in others[:RECENT_VALUES]],
            }
        last = time if last is None else last
        if seen is None:
            self.values[value] = Seen(time, last, count)
        else:  # a late event (delivered after later ones) may move first back
            seen.first = min(seen.first, time)
            seen.last = max(seen.last, last)
            seen.count += count
        return alert

    def compact(self, now: dt.datetime, expire: float) -> list[str]:
        """Forget values not seen for longer than ``expire`` before ``now``; which."""
        old = [v for v, s in self.values.items() if (now - s.last).total_seconds() > expire]
        for value in old:
            del self.values[value]
        return old


@dataclass
class ThresholdState:
    """The event times of one entity of one threshold rule within the window."""

    times: deque[dt.datetime] = field(default_factory=deque)

    def counts(self, batch: list[dt.datetime], window: float) -> list[int]:
        """For each time of ``batch`` (in order), how many rows fall within ``window`` up to it,
        counting every row at the same instant."""
        result = []
        index = 0
        while index < len(batch):
            moment = batch[index]
            peers = 1
            while index + peers < len(batch) and batch[index + peers] == moment:
                peers += 1
            self.times.extend([moment] * peers)
            while self.times and (moment - self.times[0]).total_seconds() > window:
                self.times.popleft()
            result += [len(self.times)] * peers
            index += peers
        return result


@dataclass
class DedupState:
    """When the last alert of one dedup key was kept."""

    last: dt.datetime | None = None

    def keep(self, time: dt.datetime, window: float) -> bool:
        if self.last is None or (time - self.last).total_seconds() >= window:
            self.last = time
            return True
        return False
