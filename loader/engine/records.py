"""The rows the stateful step writes: alerts (with their details and attribution), the profile
entries a batch changed, and baseline judgements; and the observation they are made from."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loader.alerts.model import SOURCES
from loader.engine.sql import account_wide
from loader.engine.state import BaselineSettings, Judgement, ProfileState
from loader.rules.model import Rule


@dataclass
class Observation:
    """One row of a rule's result (or, for a profile, a value's first row of a day, standing
    for ``count`` rows up to ``last``)."""

    entity: str | None
    value: str | None
    time: dt.datetime
    event_id: str
    row: str | None  # the result row as JSON
    start: dt.datetime | None = None  # an account-wide profile's first row
    last: dt.datetime | None = None
    count: int = 1
    batch: int = 0
    clock: dt.datetime | None = None  # the newest event seen when it was observed

    def fields(self) -> dict[str, Any]:
        parsed = json.loads(self.row) if self.row else {}
        return parsed if isinstance(parsed, dict) else {}


def pick(row: dict[str, Any], *names: str | None) -> Any:
    """The first non-NULL of the named columns of a result row, names matched
    case-insensitively as Spark resolves them."""
    return _first({key.lower(): value for key, value in row.items()}, names)


def _first(lowered: dict[str, Any], names: Sequence[str | None]) -> Any:
    return next(
        (lowered[n.lower()] for n in names if n and lowered.get(n.lower()) is not None), None
    )


def text(value: Any) -> str | None:
    return None if value is None else str(value)


Candidate = tuple[Observation, dict[str, Any] | None, int | None]  # details, events in window


def judgement_observation(
    entity: str | None, judgement: Judgement, settings: BaselineSettings, batch: int
) -> Observation:
    start = settings.start(judgement.bucket)
    return Observation(entity, start.isoformat(sep=" "), start, None, None, batch=batch)  # type: ignore[arg-type]


def judgement_details(rule: Rule, j: Judgement, settings: BaselineSettings) -> dict[str, Any]:
    start, end = settings.start(j.bucket), settings.start(j.bucket + 1)
    days = j.buckets * settings.bucket / 86400  # the history there was, up to `history`
    noun = rule.top or "value"
    top = [{"value": v or None, "count": n} for v, n in j.top]
    summary = (
        f"{j.count:,} rows in {_span(settings.bucket)} from {start:%Y-%m-%d %H:%M} UTC; "
        f"usual {_number(j.median)} (p95 {_number(j.p95)}, max {j.maximum:,}) over "
        f"{_number(days)} days"
    )
    if top and top[0]["value"] is not None:
        summary += f"; mostly {top[0]['value']} ({top[0]['count']:,})"
    return {
        "summary": summary,
        "bucket_start": start.isoformat(), "bucket_end": end.isoformat(),
        "bucket_seconds": settings.bucket, "count": j.count,
        "baseline": {
            "median": j.median, "mad": j.mad, "p95": j.p95, "max": j.maximum,
            "buckets": j.buckets, "spread": round(j.spread, 3),
        },
        "deviation": round(j.score or 0.0, 2), "deviation_allowed": settings.deviation,
        "threshold": round(j.median + settings.deviation * j.spread, 2),
        "min_count": settings.min_count,
        "top": {"column": noun, "values": top},
        "first_event_time": j.first.isoformat() if j.first else None,
        "last_event_time": j.last.isoformat() if j.last else None,
    }  # fmt: skip


def _span(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    return f"{seconds} s"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def baseline_records(
    rule: Rule, judged: list[tuple[str | None, Judgement]], batch: int
) -> list[tuple[Any, ...]]:
    """The step's "baseline" rows: each judged bucket's count against its baseline (the
    runner keeps them in profile_baseline_log)."""
    if not judged:
        return []
    settings = BaselineSettings.of(rule)
    out = []
    for entity, j in judged:
        details = {
            "median": j.median,
            "p95": j.p95,
            "max": j.maximum,
            "buckets": j.buckets,
            "score": None if j.score is None else round(j.score, 3),
            "alert": j.alert,
        }
        out.append((
            "baseline", rule.name, entity, None, None, settings.start(j.bucket), None, None,
            None, json.dumps(details), None, None, j.count, batch,
        ))  # fmt: skip
    return out


def alert_records(rule: Rule, candidates: list[Candidate]) -> list[tuple[Any, ...]]:
    """The step's "alert" rows (STEP_SCHEMA) of a rule's candidates."""
    out = []
    for seen, details, in_window in candidates:
        row = seen.fields()
        lowered = {key.lower(): value for key, value in row.items()}  # one lookup table a row
        event = {k: v for k, v in row.items() if k != "eventTime"}
        event["eventTime"] = seen.time.isoformat()
        body: dict[str, Any]
        if rule.kind == "profile":
            body = {"event": event, **(details or {})}
            if account_wide(rule):  # its state is per value: what else the profile holds is in
                body.pop("values_before", None)  # security.profile_state
                body.pop("recent_values", None)
            if body.get("last_seen_before") is not None:
                body["last_seen_before"] = body["last_seen_before"].isoformat()
        elif rule.kind == "baseline":
            body = dict(details or {})
        elif rule.threshold:
            window = int(rule.window)
            body = {"event": event, "events_in_window": in_window, "window_seconds": window}
        else:
            body = event
        if account_wide(rule):
            body["scope"] = rule.scope or "account"
        credit = attribution(rule)
        if credit:  # the event's own columns stay apart from the rule's attribution
            body = {**(body if "event" in body or rule.kind == "baseline" else {"event": body}),
                    **credit}  # fmt: skip
        account = text(_first(lowered, SOURCES["account"]))
        source_ip = text(_first(lowered, SOURCES["source_ip"]))
        if rule.kind == "baseline":
            account, source_ip = _entity_account(rule, seen.entity), _entity_address(seen.entity)
        out.append((
            "alert", rule.name, seen.entity, seen.value, seen.event_id, seen.time,
            account, text(_first(lowered, SOURCES["region"])), source_ip,
            json.dumps(body, default=str, sort_keys=True), None, None, None, seen.batch,
        ))  # fmt: skip
    return out


_ARN_ACCOUNT = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:(\d{12}):")
_ADDRESS = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$")


def _entity_account(rule: Rule, entity: str | None) -> str | None:
    """A baseline alert's account: the entity of an account-wide baseline, the account in an
    ARN entity; else unknown (a bucket holds many events)."""
    if entity is None:
        return None
    if account_wide(rule):
        return entity
    found = _ARN_ACCOUNT.match(entity)
    return found.group(1) if found else None


def _entity_address(entity: str | None) -> str | None:
    return entity if entity and _ADDRESS.match(entity) else None


ATTRIBUTION = ("author", "source", "sigma_id", "license")


def attribution(rule: Rule) -> dict[str, str]:
    """The rule's author, source, Sigma id and licence, as its header gives them: every alert
    of a rule taken from elsewhere carries them (the Detection Rule License asks that messages
    based on a Sigma rule's matches keep its author)."""
    return {key: getattr(rule, key) for key in ATTRIBUTION if getattr(rule, key)}


def state_records(
    rule: Rule, observations: Sequence[Observation], store: dict[tuple[str, ...], Any]
) -> list[tuple[Any, ...]]:
    """The profile entries this batch touched (their new first/last/count) and those it
    forgot (count 0), after compacting entries older than ``expire``."""
    if rule.kind != "profile" or not observations:
        return []
    latest = max(seen.last or seen.time for seen in observations)
    batch = observations[-1].batch
    touched = {
        (seen.entity or "", seen.value): None for seen in observations if seen.value is not None
    }
    out = []
    for key, item in store.items():
        if not isinstance(item, ProfileState) or key[:2] != ("profile", rule.name):
            continue
        entity = key[2]
        for value in item.compact(latest, float(rule.expire)):
            touched.pop((entity, value), None)
            out.append(_state_record(rule, entity or None, value, None, batch))
        for touched_entity, value in touched:
            if touched_entity == entity and value in item.values:
                seen = item.values[value]
                out.append(_state_record(rule, entity or None, value, seen, batch))
    return out


def _state_record(rule: Rule, entity: str | None, value: str, seen: Any, batch: int) -> tuple:  # type: ignore[type-arg]
    return (
        "state", rule.name, entity, value, None, None, None, None, None, None,
        seen.first if seen else None, seen.last if seen else None, seen.count if seen else 0,
        batch,
    )  # fmt: skip


# --- over pandas frames of observations (OBSERVATION_SCHEMA) ----------------------------------


def to_timestamp(value: Any) -> dt.datetime | None:
    if value is None or value != value:  # None or NaT
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
