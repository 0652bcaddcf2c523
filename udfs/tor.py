"""Tor exit lists: parsing both published formats and answering "is/was this a Tor exit".

Formats:
- ``exit-addresses`` / TorDNSEL (check.torproject.org/exit-addresses and CollecTor's hourly
  exit lists, the latter with ``@type tordnsel 1.0`` and ``Downloaded`` header lines):
  ``ExitNode``, ``Published``, ``LastStatus`` and one or more ``ExitAddress IP TIME`` per relay;
- the bulk list (check.torproject.org/torbulkexitlist): one IP per line, ``#`` comments.

A loaded list is a set of dated snapshots. ``is_exit(ip)`` answers from the newest one;
``is_exit_at(ip, ts)`` from the snapshots within ``WINDOW`` of ``ts`` (an exit list names the
relays seen in the day before it was made), and is ``None`` when no snapshot is that close.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from udfs.ip import parse_ip, public_ip

WINDOW = dt.timedelta(hours=24)
_KEYWORDS = ("ExitNode", "Published", "LastStatus", "ExitAddress")
_NAME_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[-T_ ](\d{2})[-:](\d{2})(?:[-:](\d{2}))?)?")
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class Snapshot:
    """One exit list as published at ``time`` (UTC)."""

    origin: str
    time: dt.datetime
    addresses: frozenset[str]
    format: str
    exit_nodes: int = 0
    address_lines: int = 0


@dataclass
class ParsedList:
    snapshot: Snapshot | None
    problems: list[str] = field(default_factory=list)


def _utc(day: str, hh: str | None, mm: str | None, ss: str | None) -> dt.datetime:
    clock = f"{hh or '00'}:{mm or '00'}:{ss or '00'}"
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=dt.timezone.utc)


def _parse_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=dt.timezone.utc
        )
    except ValueError:
        return None


def time_from_name(name: str) -> dt.datetime | None:
    """The date (and time) in a file name such as ``2018-11-01-00-02-01`` or
    ``torbulkexitlist_2023-10-14.txt``."""
    matches = list(_NAME_TIME.finditer(name))
    match = matches[-1] if matches else None  # the last date in a path is the file's own
    if not match:
        return None
    try:
        return _utc(*match.groups())
    except ValueError:
        return None


def parse_exit_list(text: str, origin: str, fallback_time: dt.datetime | None) -> ParsedList:
    """Parse one exit list in either format. Bad lines are reported and skipped.

    The snapshot's time is, in order: the ``Downloaded`` header, the newest ``ExitAddress``
    time, a date in ``origin``'s name, ``fallback_time`` (file modification or HTTP date).
    """
    lines = text.splitlines()
    exit_format = any(line.startswith(("ExitNode ", "@type tordnsel")) for line in lines[:50])
    parse = _parse_exit_addresses if exit_format else _parse_bulk
    return parse(lines, origin, fallback_time)


def _parse_exit_addresses(
    lines: list[str], origin: str, fallback_time: dt.datetime | None
) -> ParsedList:
    problems: list[str] = []
    addresses: set[str] = set()
    downloaded = newest = None
    nodes = address_lines = 0
    for number, line in enumerate(lines, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0]
        if keyword == "@type":
            continue
        if keyword == "Downloaded":
            downloaded = _parse_time(" ".join(words[1:3]))
        elif keyword == "ExitNode":
            nodes += 1
        elif keyword == "ExitAddress":
            address_lines += 1
            ip = parse_ip(words[1]) if len(words) > 1 else None
            if ip is None:
                problems.append(f"{origin}:{number}: not an IP address in {line.strip()!r}")
                continue
            addresses.add(str(ip))
            seen = _parse_time(" ".join(words[2:4]))
            newest = max(newest, seen) if newest and seen else (seen or newest)
        elif keyword not in _KEYWORDS:
            problems.append(f"{origin}:{number}: unexpected line {line.strip()[:80]!r}")
    when = downloaded or newest or time_from_name(origin) or fallback_time
    return _snapshot(origin, when, addresses, "exit-addresses", nodes, address_lines, problems)


def _parse_bulk(lines: list[str], origin: str, fallback_time: dt.datetime | None) -> ParsedList:
    problems: list[str] = []
    addresses: set[str] = set()
    count = 0
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        ip = parse_ip(text)
        if ip is None:
            problems.append(f"{origin}:{number}: not an IP address: {text[:80]!r}")
            continue
        count += 1
        addresses.add(str(ip))
    when = time_from_name(origin) or fallback_time
    return _snapshot(origin, when, addresses, "bulk", 0, count, problems)


def _snapshot(
    origin: str,
    when: dt.datetime | None,
    addresses: set[str],
    kind: str,
    nodes: int,
    address_lines: int,
    problems: list[str],
) -> ParsedList:
    if not addresses:
        problems.append(f"{origin}: no exit addresses found (not a Tor exit list?)")
        return ParsedList(None, problems)
    if when is None:
        problems.append(f"{origin}: no date in the list or its name; using the time of loading")
        when = dt.datetime.now(dt.timezone.utc)
    snapshot = Snapshot(origin, when, frozenset(addresses), kind, nodes, address_lines)
    return ParsedList(snapshot, problems)


class TorExitIndex:
    """Snapshots indexed by address: which snapshots list an address, in time order.

    Small (a few bytes per listed address and snapshot), so Spark broadcasts it to workers.
    """

    def __init__(self, snapshots: list[Snapshot], window: dt.timedelta = WINDOW) -> None:
        ordered = sorted(snapshots, key=lambda s: s.time)
        self.times = [s.time.timestamp() for s in ordered]
        self.window = window.total_seconds()
        self.origins = [s.origin for s in ordered]
        listed: dict[str, list[int]] = {}
        for index, snapshot in enumerate(ordered):
            for address in snapshot.addresses:
                listed.setdefault(address, []).append(index)
        self.listed = {ip: tuple(indexes) for ip, indexes in listed.items()}
        self.newest = len(ordered) - 1

    def __len__(self) -> int:
        return len(self.times)

    def is_exit(self, raw: Any) -> bool | None:
        """Whether ``raw`` (a sourceIPAddress value) is in the newest snapshot."""
        if raw is None:
            return None
        indexes = self.listed.get(public_ip(raw) or "")
        return bool(indexes) and indexes[-1] == self.newest

    def covering(self, epoch: float) -> tuple[int, int]:
        """Index range [lo, hi) of the snapshots within the window of ``epoch``."""
        lo = bisect.bisect_left(self.times, epoch - self.window)
        hi = bisect.bisect_right(self.times, epoch + self.window)
        return lo, hi

    def is_exit_at(self, raw: Any, epoch: float | None) -> bool | None:
        """Whether ``raw`` was a listed exit within the window of ``epoch`` (seconds since
        1970, UTC); ``None`` when no snapshot is that close, so the lists cannot tell."""
        if raw is None or epoch is None or epoch != epoch:  # NaN: missing time
            return None
        lo, hi = self.covering(epoch)
        if lo >= hi:
            return None
        return self.listed_between(public_ip(raw), lo, hi)

    def coverage(self) -> list[tuple[float, float]]:
        """The times (seconds since 1970, UTC) ``is_exit_at`` can answer for, as merged
        closed intervals: within the window of some snapshot."""
        merged: list[tuple[float, float]] = []
        for moment in self.times:  # sorted
            lo, hi = moment - self.window, moment + self.window
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return merged

    def ever_listed(self, raw: Any) -> bool | None:
        """Whether ``raw`` is an address some snapshot lists (None for a missing value)."""
        if raw is None:
            return None
        return (public_ip(raw) or "") in self.listed

    def listed_between(self, ip: str | None, lo: int, hi: int) -> bool:
        indexes = self.listed.get(ip or "")
        if not indexes:
            return False
        position = bisect.bisect_left(indexes, lo)
        return position < len(indexes) and indexes[position] < hi


class TorExitList:
    """The exit lists under one source (file, folder, archive, URL or s3://), kept up to date.

    ``refresh()`` re-reads the source only if it changed (modification times, ETags, HTTP
    conditional requests) and adds what it finds as new snapshots, so a list that is replaced
    in place (a cron job, a URL) builds up a history that ``is_exit_at`` can use.
    """

    def __init__(self, source: str, max_snapshots: int = 10_000) -> None:
        from udfs.sources import DocumentSource

        self.source = source
        self.max_snapshots = max_snapshots
        self.problems: list[str] = []
        self._documents = DocumentSource(source)
        self._snapshots: dict[tuple[str, dt.datetime], Snapshot] = {}

    @property
    def snapshots(self) -> list[Snapshot]:
        return sorted(self._snapshots.values(), key=lambda s: s.time)

    def refresh(self) -> bool:
        """Read the source if it changed; True when snapshots were added or replaced."""
        from loader.errors import UdfError

        documents = self._documents.read()
        if documents is None:
            return False
        changed = False
        self.problems = list(self._documents.problems)
        for document in documents:
            parsed = parse_exit_list(document.text, document.origin, document.modified)
            self.problems += parsed.problems
            snapshot = parsed.snapshot
            if (
                snapshot is not None
                and self._snapshots.get((snapshot.origin, snapshot.time)) != snapshot
            ):
                self._snapshots[(snapshot.origin, snapshot.time)] = snapshot
                changed = True
        if not self._snapshots:
            shown = "; ".join(self.problems[:3])
            raise UdfError(f"--tor-exit-list {self.source}: no usable exit list ({shown})")
        for key in sorted(self._snapshots, key=lambda k: k[1])[: -self.max_snapshots]:
            del self._snapshots[key]
        return changed

    def index(self) -> TorExitIndex:
        return TorExitIndex(self.snapshots)

    def describe(self) -> str:
        snapshots = self.snapshots
        newest = snapshots[-1]
        span = (
            f"{len(snapshots)} snapshots {snapshots[0].time:%Y-%m-%d %H:%M} .. "
            f"{newest.time:%Y-%m-%d %H:%M} UTC"
            if len(snapshots) > 1
            else f"1 snapshot of {newest.time:%Y-%m-%d %H:%M} UTC"
        )
        return f"{len(newest.addresses):,} exit addresses in the newest list ({span})"
