"""Judging log delivery: where an account or region stopped delivering files, and why we say so.

Pure Python over small inputs (per-series statistics and the long intervals between files, which
Spark computes from any number of files; see :mod:`loader.coverage.deliveries`), so every rule
here is tested without a JVM.

A *series* is the files of one account and region, or of one account in all its regions
(region ``*``). Its usual interval is the 99th percentile of the intervals between its files,
leaving out its longest 1% (at least the longest one), so that a gap in a short series does not
set its own threshold. An interval is a gap when it is longer than the series' threshold::

    threshold = max(min_gap, factor * p99 interval)        (defaults: 1 hour, 3)

and so is the time from the series' last file to the *reference* time (the newest delivery seen
in every series, or the clock with ``coverage --now now``): an open gap, judged only once it is
longer than the threshold, so the minutes CloudTrail takes to deliver never look like a gap. A
series with fewer than ``min_files`` files has no usual gap yet and is not judged.

When every region of an account is silent, the account's gap (region ``*``) says so once; a
region's own gap is kept only for the time it is not inside one of its account's gaps, and only
if that time is longer than the region's threshold (its other regions delivered meanwhile).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

ALL_REGIONS = "*"
DEFAULT_MIN_GAP = 3600.0
DEFAULT_FACTOR = 3.0
DEFAULT_MIN_FILES = 12
LEFT_OUT = 0.01  # the longest intervals left out of a series' usual interval, as a share
SHOWN_DAYS = 3
_STAMP = re.compile(r"_(\d{8}T\d{4})Z_[^/]*$")


def delivered_at(path: str, modified: dt.datetime | None = None) -> dt.datetime | None:
    """When a log file was written: the timestamp in its CloudTrail name
    (``..._CloudTrail_<region>_YYYYMMDDTHHMMZ_<id>.json.gz``), else its modification time."""
    match = _STAMP.search(path)
    if match:
        try:
            return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M")
        except ValueError:
            pass
    if modified is not None and modified.tzinfo is not None:
        return modified.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return modified


@dataclass(frozen=True)
class GapSettings:
    """How long a silence must be to count (the rule's own threshold) and how alerts repeat."""

    min_gap: float = DEFAULT_MIN_GAP
    factor: float = DEFAULT_FACTOR
    min_files: int = DEFAULT_MIN_FILES
    dedup: float = 6 * 3600.0  # one alert per account/region within this time

    def threshold(self, p99: float | None) -> float:
        return max(self.min_gap, self.factor * (p99 or 0.0))


@dataclass(frozen=True)
class Series:
    """The files of one account and region (or ``*``): count, first and last delivery, and the
    99th percentile of the intervals between them (seconds)."""

    account: str
    region: str
    files: int
    first: dt.datetime
    last: dt.datetime
    p99: float | None


@dataclass(frozen=True)
class Interval:
    """Two consecutive deliveries of one series, further apart than the minimum gap."""

    account: str
    region: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Gap:
    account: str
    region: str  # ``*``: every region of the account
    start: dt.datetime  # the last delivery before the silence
    end: dt.datetime | None  # the first one after it; None: still silent at the reference
    reference: dt.datetime  # where an open gap was judged
    threshold: float
    p99: float | None
    reason: str

    @property
    def entity(self) -> str:
        return f"{self.account}/{self.region}"

    @property
    def seconds(self) -> float:
        return ((self.end or self.reference) - self.start).total_seconds()


@dataclass
class Judgement:
    series: list[Series] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    reference: dt.datetime | None = None


def judge(
    series: list[Series],
    intervals: list[Interval],
    settings: GapSettings,
    reference: dt.datetime | None = None,
) -> Judgement:
    """Every gap of the series (see the module's description), oldest first."""
    if not series:
        return Judgement()
    seen = "the time judged at" if reference else "the newest delivery seen"
    reference = reference or max(s.last for s in series)
    by_key = {(s.account, s.region): s for s in series}
    found: dict[tuple[str, str], list[tuple[dt.datetime, dt.datetime | None]]] = {}
    for item in intervals:
        s = by_key.get((item.account, item.region))
        if s is None or s.files < settings.min_files:
            continue
        if (item.end - item.start).total_seconds() > settings.threshold(s.p99):
            found.setdefault((s.account, s.region), []).append((item.start, item.end))
    for s in series:
        silent = (reference - s.last).total_seconds()
        if s.files >= settings.min_files and silent > settings.threshold(s.p99):
            found.setdefault((s.account, s.region), []).append((s.last, None))
    gaps = []
    for (account, region), spans in found.items():
        s = by_key[(account, region)]
        threshold = settings.threshold(s.p99)
        whole = found.get((account, ALL_REGIONS), []) if region != ALL_REGIONS else []
        for start, end in sorted(spans, key=lambda span: span[0]):
            if whole:
                alone = _uncovered(start, end or reference, [(a, b or reference) for a, b in whole])
                if alone <= threshold:
                    continue  # the account's gap says it
            reason = _reason(region, start, end, reference, threshold, s.p99, seen)
            gaps.append(Gap(account, region, start, end, reference, threshold, s.p99, reason))
    gaps.sort(key=lambda g: (g.start, g.account, g.region))
    return Judgement(sorted(series, key=lambda s: (s.account, s.region)), gaps, reference)


def _uncovered(
    start: dt.datetime, end: dt.datetime, covers: list[tuple[dt.datetime, dt.datetime]]
) -> float:
    """Seconds of [start, end) outside every span of ``covers``."""
    total = (end - start).total_seconds()
    for a, b in sorted(covers):
        low, high = max(a, start), min(b, end)
        if high > low:
            total -= (high - low).total_seconds()
    return total


def _reason(
    region: str,
    start: dt.datetime,
    end: dt.datetime | None,
    reference: dt.datetime,
    threshold: float,
    p99: float | None,
    seen: str,
) -> str:
    usual = f"usual interval p99 {duration_text(p99 or 0)}; threshold {duration_text(threshold)}"
    where = "from any region of the account" if region == ALL_REGIONS else ""
    if end is None:
        text = (
            f"no log file {where + ' ' if where else ''}since {start:%Y-%m-%d %H:%M} "
            f"({duration_text((reference - start).total_seconds())} before "
            f"{reference:%Y-%m-%d %H:%M}, {seen}); {usual}"
        )
    else:
        text = (
            f"no log file {where + ' ' if where else ''}for "
            f"{duration_text((end - start).total_seconds())}, {start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M}; {usual}"
        )
    if region != ALL_REGIONS:
        text += "; the account's other regions delivered meanwhile"
    days = missing_days(start, end or reference)
    if days:
        shown = ", ".join(d.isoformat() for d in days[:SHOWN_DAYS])
        more = f" and {len(days) - SHOWN_DAYS} more" if len(days) > SHOWN_DAYS else ""
        text += f"; whole day(s) without a file: {shown}{more}"
    return text


def missing_days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The UTC days wholly inside the silence (start, end)."""
    first = start.date() + dt.timedelta(days=1)
    days = []
    while dt.datetime.combine(first + dt.timedelta(days=1), dt.time()) <= end:
        days.append(first)
        first += dt.timedelta(days=1)
    return days


def duration_text(seconds: float) -> str:
    """3 d 4 h, 5 h 5 min, 12 min, 40 s."""
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def deduplicated(
    gaps: list[Gap], window: float, earlier: dict[str, list[dt.datetime]] | None = None
) -> list[Gap]:
    """The gaps to alert on: one per entity within ``window`` (counted from the start of the
    gap last alerted, here or in ``earlier``: entity -> starts already alerted)."""
    seen = {entity: sorted(starts) for entity, starts in (earlier or {}).items()}
    kept = []
    for gap in sorted(gaps, key=lambda g: g.start):
        starts = seen.setdefault(gap.entity, [])
        if gap.start in starts:
            kept.append(gap)  # the same gap, judged again: the same alert id, written once
            continue
        if any(abs((gap.start - s).total_seconds()) < window for s in starts):
            continue
        starts.append(gap.start)
        kept.append(gap)
    return kept
