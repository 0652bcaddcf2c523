"""The stateful step: observations of one rule and key, in time order, applied to what the rule
remembers (:mod:`loader.engine.state`); the alerts they raise and the profile entries they
change. The one implementation of the rules' semantics:

- ``alert`` rules: every observation alerts; with ``threshold``/``window``, when at least
  ``threshold`` rows of its entity fall within ``window`` up to it;
- ``profile`` rules: a value never seen for the entity, or not within ``expire``, alerts, except
  while the entity (account-wide: the profile) is within ``learning`` of its first row;
- ``dedup``: one alert per dedup key (default: the entity) within the window, greedily in time.

`detect` runs it over the whole history as one batch (:func:`batch_step`, each key starting
empty); `run` batch after batch with the state in Spark's state store (:func:`stream_step`).
Pure Python over pandas frames: the tests check it without a JVM.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pickle
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loader.alerts.model import SOURCES
from loader.engine.sql import account_wide
from loader.engine.state import DedupState, ProfileState, ThresholdState
from loader.rules.model import Rule

if TYPE_CHECKING:
    import pandas as pd

# The step's output: alerts, the profile entries a batch changed ("state" rows, kept in
# profile_state_log; seen_count 0 marks an entry forgotten after `expire`), a runner's batch
# status ("status") and rules that failed in the step ("error").
STEP_SCHEMA = (
    "record string, rule string, entity string, value string, event_id string, "
    "event_time timestamp, account string, region string, source_ip string, details string, "
    "first_seen timestamp, last_seen timestamp, seen_count bigint, batch bigint"
)
STEP_COLUMNS = [c.split()[0] for c in STEP_SCHEMA.split(", ")]
STATE_SCHEMA = "store string"


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


def apply_rule(
    rule: Rule, observations: Sequence[Observation], store: dict[tuple[str, ...], Any]
) -> list[Candidate]:
    """Apply one batch of a rule's observations (in (time, eventID) order) to the state in
    ``store``; the alerts they raise, with a profile's details or a threshold's count."""
    values = rule.values
    candidates: list[Candidate] = []
    if rule.kind == "profile":
        for seen in observations:
            state = store.setdefault(("profile", rule.name, seen.entity or ""), ProfileState())
            if seen.start is not None and (state.start is None or seen.start < state.start):
                state.start = seen.start
            details = state.observe(
                seen.time, seen.value, float(values["learning"]), float(values["expire"]),
                seen.last, seen.count,
            )  # fmt: skip
            if details is not None:
                candidates.append((seen, details, None))
    elif values.get("threshold"):
        by_entity: dict[str, list[Observation]] = {}
        for seen in observations:
            by_entity.setdefault(seen.entity or "", []).append(seen)
        for entity, group in by_entity.items():
            state = store.setdefault(("threshold", rule.name, entity), ThresholdState())
            times = [s.time for s in group for _ in range(max(s.count, 1))]
            counts = iter(state.counts(times, float(values["window"])))
            for seen in group:  # a row standing for n identical rows counts n times
                n = [next(counts) for _ in range(max(seen.count, 1))][-1]
                if n >= int(values["threshold"]):
                    candidates.append((seen, None, n))
        candidates.sort(key=lambda c: (c[0].time, c[0].event_id))
    else:
        candidates = [(seen, None, None) for seen in observations]
    window = float(values.get("dedup") or 0)
    if values.get("threshold"):
        window = max(window, float(values["window"]))
    if window <= 0:
        return candidates
    return [c for c in candidates if _kept(rule, c[0], store, window)]


def _kept(rule: Rule, seen: Observation, store: dict[tuple[str, ...], Any], window: float) -> bool:
    keys = rule.values.get("dedup_key")
    if keys:  # as concat_ws joins them: NULLs left out
        row = seen.fields()
        key = "|".join(part for k in keys if (part := text(pick(row, k))) is not None)
    else:
        key = seen.entity or ""
    return store.setdefault(("dedup", rule.name, key), DedupState()).keep(seen.time, window)


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
        elif rule.values.get("threshold"):
            window = int(rule.values["window"])
            body = {"event": event, "events_in_window": in_window, "window_seconds": window}
        else:
            body = event
        credit = attribution(rule)
        if credit:  # the event's own columns stay apart from the rule's attribution
            body = {**(body if "event" in body else {"event": body}), **credit}
        out.append((
            "alert", rule.name, seen.entity, seen.value, seen.event_id, seen.time,
            text(_first(lowered, SOURCES["account"])), text(_first(lowered, SOURCES["region"])),
            text(_first(lowered, SOURCES["source_ip"])),
            json.dumps(body, default=str, sort_keys=True), None, None, None, seen.batch,
        ))  # fmt: skip
    return out


ATTRIBUTION = ("author", "source", "sigma_id", "license")


def attribution(rule: Rule) -> dict[str, str]:
    """The rule's author, source, Sigma id and licence, as its header gives them: every alert
    of a rule taken from elsewhere carries them (the Detection Rule License asks that messages
    based on a Sigma rule's matches keep its author)."""
    return {key: rule.values[key] for key in ATTRIBUTION if rule.values.get(key)}


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
    wide = account_wide(rule)
    out = []
    for (kind, name, entity), item in store.items():
        if kind != "profile" or name != rule.name or not isinstance(item, ProfileState):
            continue
        for value in item.compact(latest, float(rule.values["expire"])):
            touched.pop((entity, value), None)
            out.append(_state_record(rule, None if wide else entity, value, None, batch))
        for touched_entity, value in touched:
            if touched_entity == entity and value in item.values:
                seen = item.values[value]
                out.append(_state_record(rule, None if wide else entity, value, seen, batch))
    return out


def _state_record(rule: Rule, entity: str | None, value: str, seen: Any, batch: int) -> tuple:  # type: ignore[type-arg]
    return (
        "state", rule.name, entity, value, None, None, None, None, None, None,
        seen.first if seen else None, seen.last if seen else None, seen.count if seen else 0,
        batch,
    )  # fmt: skip


# --- over pandas frames of observations (OBSERVATION_SCHEMA) ----------------------------------


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None or value != value:  # None or NaT
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


def observations_of(frame: pd.DataFrame) -> list[Observation]:
    """A frame's observations in (time, eventID) order."""
    # the row breaks ties: events of one time without an id (real logs have some) keep one order
    frame = frame.sort_values(["eventTime", "eventID", "row"], kind="stable", na_position="first")
    out = []
    columns = ("entity", "value", "eventID", "row", "count", "batch")
    times = [_times(frame[c]) for c in ("eventTime", "start", "last")]
    for (entity, value, event_id, row, count, batch), time, start, last in zip(
        zip(*(frame[c] for c in columns), strict=True), *times, strict=True
    ):
        out.append(Observation(
            _none(entity), _none(value), time, event_id, _none(row), start, last,
            1 if count is None or count != count else int(count), int(batch),
        ))  # fmt: skip
    return out


def _times(column: pd.Series) -> list[dt.datetime | None]:
    """A column's timestamps as datetimes (None for NULL), converted as one array: one
    conversion per value took a quarter of the step for a rule with many alerts."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        return [None if v is None or v != v else v for v in column.array.to_pydatetime()]
    return [_timestamp(v) for v in column]


def _none(value: Any) -> Any:
    return None if value is None or value != value else value


def apply_frame(
    rule: Rule, frame: pd.DataFrame, store: dict[tuple[str, ...], Any], with_state: bool
) -> list[tuple[Any, ...]]:
    """STEP_SCHEMA rows for one key's observations (``frame``) applied to ``store``."""
    observations = observations_of(frame)
    out = alert_records(rule, apply_rule(rule, observations, store))
    if with_state:
        out += state_records(rule, observations, store)
    return out


def _quiet_concat() -> None:
    # pyspark's worker concatenates the frames yielded here, some with all-NA columns; pandas
    # 2.x warns about that on every batch (harmless: the types are set by the schema)
    warnings.filterwarnings("ignore", "The behavior of DataFrame concatenation", FutureWarning)


def _error(rule: Rule, exc: Exception, batch: int) -> tuple[Any, ...]:
    message = f"{rule.path}: {type(exc).__name__}: {exc}"
    return ("error", rule.name, None, None, None, None, None, None, None, message,
            None, None, None, batch)  # fmt: skip


def batch_step(rules: Sequence[Rule]):  # type: ignore[no-untyped-def]
    """For ``applyInPandas`` over observations grouped by rule and a hash of the key: each
    key applied alone from an empty state (the whole history is this one batch)."""
    import pandas as pd

    by_name = {rule.name: rule for rule in rules}

    def step(frame: pd.DataFrame) -> pd.DataFrame:
        _quiet_concat()
        out: list[tuple[Any, ...]] = []
        for (name, _), group in frame.groupby(["rule", "key"], sort=True, dropna=False):
            rule = by_name.get(name)
            if rule is None:
                continue
            try:
                out += apply_frame(rule, group, {}, with_state=False)
            except Exception as exc:  # one rule's bug must not stop the others
                out.append(_error(rule, exc, int(group["batch"].max())))
        return pd.DataFrame(out, columns=STEP_COLUMNS)

    return step


def stream_step(rules: Sequence[Rule], strict: bool = False, status: str | None = None):  # type: ignore[no-untyped-def]
    """For ``applyInPandasWithState`` over observations grouped by (rule, key): the key's
    state (pickled) read, the batch applied, the state written back. Rows of the rule
    ``status`` (a runner's batch status) pass through as "status" records."""
    import pandas as pd

    by_name = {rule.name: rule for rule in rules}

    def step(key: tuple[str, str], frames: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # type: ignore[no-untyped-def]
        _quiet_concat()
        frame = pd.concat(list(frames))
        if status is not None and key[0] == status:
            out = [("status", status, None, None, None, None, None, None, None, raw,
                    None, None, None, int(batch))
                   for raw, batch in zip(frame["row"], frame["batch"], strict=True)]  # fmt: skip
            yield pd.DataFrame(out, columns=STEP_COLUMNS)
            return
        rule = by_name.get(key[0])
        if rule is None:  # rows of a rule since removed from the rule set
            return
        store = pickle.loads(base64.b64decode(state.get[0])) if state.exists else {}
        try:
            out = apply_frame(rule, frame, store, with_state=True)
        except Exception as exc:  # one rule's bug must not stop the others
            if strict:
                raise
            yield pd.DataFrame([_error(rule, exc, int(frame["batch"].max()))], columns=STEP_COLUMNS)
            return
        state.update((base64.b64encode(pickle.dumps(store)).decode("ascii"),))
        if out:  # nothing to yield is fine, and spares pandas an empty concat
            yield pd.DataFrame(out, columns=STEP_COLUMNS)

    return step
