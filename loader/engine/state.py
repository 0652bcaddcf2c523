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
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loader.rules.model import Rule

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


# --- baselines --------------------------------------------------------------------------------

TOP_VALUES = 5
MAD_TO_SIGMA = 1.4826  # MAD x this estimates the standard deviation of normal data
P95_TO_SIGMA = 1.645  # (p95 - median) / this does too


@dataclass(frozen=True)
class BaselineSettings:
    """A baseline rule's header, in buckets (numbered from 1970-01-01 UTC) and seconds."""

    bucket: int  # seconds
    history: int  # buckets
    min_history: float  # seconds
    min_count: int
    deviation: float
    lateness: float  # seconds

    @classmethod
    def of(cls, rule: Rule) -> BaselineSettings:
        """From a baseline rule, whose keys all have values (their defaults when not given)."""
        bucket = int(rule.bucket or 0)
        return cls(
            bucket, max(int((rule.history or 0) // bucket), 1), float(rule.min_history or 0),
            int(rule.min_count or 0), float(rule.deviation or 0), float(rule.lateness or 0),
        )  # fmt: skip

    def start(self, bucket: int) -> dt.datetime:
        return EPOCH + dt.timedelta(seconds=bucket * self.bucket)

    def number(self, time: dt.datetime) -> int:
        return int((time - EPOCH).total_seconds() // self.bucket)

    def closed(self, bucket: int, clock: dt.datetime) -> bool:
        """Whether ``bucket`` is judged at ``clock``: the newest event seen is more than
        ``lateness`` past its end."""
        end = self.start(bucket + 1) + dt.timedelta(seconds=self.lateness)
        return clock > end


EPOCH = dt.datetime(1970, 1, 1)


@dataclass
class Judgement:
    """One closed bucket of one entity, against its baseline."""

    bucket: int
    count: int
    buckets: int  # of history (empty ones as zero)
    median: float
    mad: float
    p95: float
    maximum: int
    spread: float
    score: float | None  # the robust z-score; None while learning
    alert: bool
    top: list[tuple[str, int]]
    first: dt.datetime | None
    last: dt.datetime | None
    learning: bool


def robust_stats(values: list[int]) -> tuple[float, float, float, int, float]:
    """(median, MAD, p95, maximum, spread) of a history of bucket counts. The spread is the
    largest of 1.4826 x MAD, (p95 - median) / 1.645, sqrt(median) and 1: the MAD alone is 0
    for a steady or mostly idle entity, and counts vary at least as a Poisson count does."""
    ordered = sorted(values)
    n = len(ordered)
    median = _median(ordered)
    mad = _median(sorted(abs(v - median) for v in ordered))
    p95 = float(ordered[min(n - 1, max(0, math.ceil(0.95 * n) - 1))])
    spread = max(MAD_TO_SIGMA * mad, (p95 - median) / P95_TO_SIGMA, math.sqrt(median), 1.0)
    return median, mad, p95, ordered[-1], spread


def _median(ordered: list[float] | list[int]) -> float:
    n = len(ordered)
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


@dataclass
class BaselineState:
    """One entity of one baseline rule: its rows per bucket within ``history`` (empty buckets
    not stored), the open buckets' top values and times, and how far it has judged."""

    size: int = 0  # the bucket length its bucket numbers count (a rule changed: start again)
    first: int | None = None  # the bucket of the entity's first row: its learning starts there
    last: int | None = None  # the newest bucket with rows
    judged: int | None = None  # every bucket up to this one has been judged
    counts: dict[int, int] = field(default_factory=dict)
    tops: dict[int, dict[str, int]] = field(default_factory=dict)  # open buckets only
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)  # open ones

    def add(
        self, time: dt.datetime, last: dt.datetime | None, value: str | None, count: int,
        settings: BaselineSettings,
    ) -> list[Judgement]:  # fmt: skip
        """Count ``count`` rows from ``time`` to ``last`` (one bucket). An entity whose rows
        before are all older than ``history`` starts learning again: what was open is judged
        first (it closed long ago)."""
        bucket = settings.number(time)
        judged: list[Judgement] = []
        if self.last is not None and bucket - self.last > settings.history:
            judged = self.judge(None, settings)
            self.first, self.last, self.counts = None, None, {}
        if self.first is None or bucket < self.first:
            self.first = bucket
        self.last = bucket if self.last is None else max(self.last, bucket)
        self.counts[bucket] = self.counts.get(bucket, 0) + count
        if self.judged is None or bucket > self.judged:
            top = self.tops.setdefault(bucket, {})
            top[value or ""] = top.get(value or "", 0) + count
            end = last or time
            span = self.spans.get(bucket)
            self.spans[bucket] = (min(span[0], time), max(span[1], end)) if span else (time, end)
        return judged

    def judge(self, clock: dt.datetime | None, settings: BaselineSettings) -> list[Judgement]:
        """Judge the buckets with rows that closed by ``clock`` (None: all), oldest first."""
        out = []
        for bucket in sorted(b for b in self.tops if clock is None or settings.closed(b, clock)):
            out.append(self._judge(bucket, settings))
            self.judged = bucket if self.judged is None else max(self.judged, bucket)
            del self.tops[bucket]
            self.spans.pop(bucket, None)
        if out:  # what no later bucket's history reaches
            oldest = max(out[-1].bucket - settings.history, self.first or 0)
            self.counts = {b: n for b, n in self.counts.items() if b >= oldest}
        return out

    def _judge(self, bucket: int, settings: BaselineSettings) -> Judgement:
        count = self.counts.get(bucket, 0)
        top = sorted(self.tops.get(bucket, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        first, last = self.spans.get(bucket, (None, None))
        start = max(self.first if self.first is not None else bucket, bucket - settings.history)
        history = [self.counts.get(b, 0) for b in range(start, bucket)]
        age = (bucket - (self.first if self.first is not None else bucket)) * settings.bucket
        learning = age < settings.min_history
        median, mad, p95, maximum, spread = robust_stats(history) if history else (0, 0, 0, 0, 1)
        score = None if learning else (count - median) / spread
        alert = score is not None and count >= settings.min_count and score > settings.deviation
        return Judgement(
            bucket, count, len(history), median, mad, p95, maximum, spread, score, alert,
            [(v, n) for v, n in top[:TOP_VALUES]], first, last, learning,
        )  # fmt: skip

    def next_due(self, settings: BaselineSettings) -> dt.datetime | None:
        """When the clock must have passed for something to happen: the oldest open bucket
        judged, or (nothing open) the state forgotten, its rows all older than ``history``."""
        if self.tops:
            return settings.start(min(self.tops) + 1) + dt.timedelta(seconds=settings.lateness)
        if self.last is None:
            return None
        return self.forget_at(settings)

    def forget_at(self, settings: BaselineSettings) -> dt.datetime:
        return settings.start(self.last + 1 + settings.history) + dt.timedelta(  # type: ignore[operator]
            seconds=settings.lateness
        )
