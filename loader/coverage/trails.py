"""What the events say about the trails themselves: when logging was stopped or a trail deleted,
until when (the ``StartLogging`` or ``CreateTrail`` that resumed it), and event selector changes.

These come from the events the trail did deliver (CloudTrail logs its own ``StopLogging``), so
they complement the delivery gaps: a stopped trail delivers nothing, and its gap in the files
is seen by :mod:`loader.coverage.gaps` too; here is who stopped it and when it came back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

STOPS = {"StopLogging": "logging stopped", "DeleteTrail": "trail deleted"}
RESUMES = {"StartLogging": "logging started", "CreateTrail": "trail created"}
CHANGES = {"PutEventSelectors": "event selectors changed", "UpdateTrail": "trail updated"}
TRAIL_EVENTS = (*STOPS, *RESUMES, *CHANGES)


@dataclass(frozen=True)
class TrailEvent:
    time: dt.datetime
    name: str  # the eventName
    account: str | None
    region: str | None
    trail: str | None  # requestParameters.name: a name or an ARN
    principal: str | None
    error: str | None  # a failed call changed nothing


@dataclass(frozen=True)
class TrailSpan:
    """A trail stopped (or deleted) at ``start`` by ``principal``; resumed at ``end`` (None:
    not within the events read), or a point change (``end`` equals ``start``, ``stop`` False)."""

    account: str | None
    region: str | None
    trail: str
    start: dt.datetime
    end: dt.datetime | None
    what: str
    principal: str | None
    stop: bool

    def render(self) -> str:
        who = f" by {self.principal}" if self.principal else ""
        where = f"{self.account or '?'}/{self.region or '?'}"
        if not self.stop:
            return f"{where} trail {self.trail}: {self.what} at {self.start:%Y-%m-%d %H:%M}{who}"
        until = (
            f"until {self.end:%Y-%m-%d %H:%M} (resumed)"
            if self.end
            else "not resumed in the events read"
        )
        return (
            f"{where} trail {self.trail}: {self.what} at {self.start:%Y-%m-%d %H:%M}{who}, {until}"
        )


def _short(trail: str) -> str:
    """Trails are named by name or ARN (arn:aws:cloudtrail:region:account:trail/NAME)."""
    return trail.rsplit("trail/", 1)[-1] if trail.startswith("arn:") else trail


def trail_spans(events: list[TrailEvent]) -> list[TrailSpan]:
    """Stops paired with the resume that follows them, per account and trail; changes as points.
    Failed calls (``errorCode`` set) are left out: they changed nothing."""
    spans: list[TrailSpan] = []
    open_stops: dict[tuple[str | None, str], TrailSpan] = {}
    for event in sorted(events, key=lambda e: e.time):
        if event.error or not event.trail:
            continue
        key = (event.account, _short(event.trail))
        if event.name in STOPS:
            if key not in open_stops:
                open_stops[key] = TrailSpan(
                    event.account, event.region, key[1], event.time, None, STOPS[event.name],
                    event.principal, True,
                )  # fmt: skip
        elif event.name in RESUMES:
            stopped = open_stops.pop(key, None)
            if stopped is not None:
                spans.append(
                    TrailSpan(**{**stopped.__dict__, "end": event.time})  # type: ignore[arg-type]
                )
        elif event.name in CHANGES:
            spans.append(TrailSpan(
                event.account, event.region, key[1], event.time, event.time, CHANGES[event.name],
                event.principal, False,
            ))  # fmt: skip
    spans.extend(open_stops.values())
    return sorted(spans, key=lambda s: (s.start, s.trail))


def trail_event(row: Any) -> TrailEvent:
    """A row of :data:`loader.coverage.deliveries.TRAIL_EVENTS_SQL` as a TrailEvent."""
    return TrailEvent(
        row.event_time, row.event_name, row.account, row.region, row.trail, row.principal,
        row.error,
    )  # fmt: skip
