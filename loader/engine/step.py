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
import pickle
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from loader.engine.records import (
    Candidate,
    Observation,
    alert_records,
    baseline_records,
    judgement_details,
    judgement_observation,
    pick,
    state_records,
    text,
    to_timestamp,
)
from loader.engine.sql import SCOPE_MARK
from loader.engine.state import (
    BaselineSettings,
    BaselineState,
    DedupState,
    Judgement,
    ProfileState,
    ThresholdState,
)
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


def apply_rule(
    rule: Rule,
    observations: Sequence[Observation],
    store: dict[tuple[str, ...], Any],
    clock: dt.datetime | None = None,
    judged: list[tuple[str | None, Judgement]] | None = None,
) -> list[Candidate]:
    """Apply one batch of a rule's observations (in (time, eventID) order) to the state in
    ``store``; the alerts they raise, with a profile's details or a threshold's count. A
    baseline judges the buckets closed by ``clock`` (default: the observations' own) and
    adds every judgement to ``judged``."""
    candidates: list[Candidate] = []
    if rule.kind == "baseline":
        candidates = _baseline(rule, observations, store, clock, judged)
    elif rule.kind == "profile":
        for seen in observations:
            state = store.setdefault(("profile", rule.name, seen.entity or ""), ProfileState())
            if seen.start is not None and (state.start is None or seen.start < state.start):
                state.start = seen.start
            details = state.observe(
                seen.time, seen.value, float(rule.learning), float(rule.expire),
                seen.last, seen.count,
            )  # fmt: skip
            if details is not None:
                candidates.append((seen, details, None))
    elif rule.threshold:
        by_entity: dict[str, list[Observation]] = {}
        for seen in observations:
            by_entity.setdefault(seen.entity or "", []).append(seen)
        for entity, group in by_entity.items():
            state = store.setdefault(("threshold", rule.name, entity), ThresholdState())
            times = [s.time for s in group for _ in range(max(s.count, 1))]
            counts = iter(state.counts(times, float(rule.window)))
            for seen in group:  # a row standing for n identical rows counts n times
                n = [next(counts) for _ in range(max(seen.count, 1))][-1]
                if n >= int(rule.threshold):
                    candidates.append((seen, None, n))
        candidates.sort(key=lambda c: (c[0].time, c[0].event_id))
    else:
        candidates = [(seen, None, None) for seen in observations]
    window = float(rule.dedup or 0)
    if rule.threshold:
        window = max(window, float(rule.window))
    if window <= 0:
        return candidates
    return [c for c in candidates if _kept(rule, c[0], store, window)]


def _baseline(
    rule: Rule,
    observations: Sequence[Observation],
    store: dict[tuple[str, ...], Any],
    clock: dt.datetime | None,
    judged: list[tuple[str | None, Judgement]] | None,
) -> list[Candidate]:
    settings = BaselineSettings.of(rule)
    if clock is None:
        clock = max((s.clock for s in observations if s.clock is not None), default=None)
    found: list[tuple[str | None, Judgement]] = []
    for key in [k for k, v in store.items() if k[0] == "baseline" and v.size != settings.bucket]:
        store[key] = BaselineState(size=settings.bucket)  # its bucket changed: counts are moot
    for seen in observations:
        state = store.setdefault(
            ("baseline", rule.name, seen.entity or ""), BaselineState(size=settings.bucket)
        )
        found += [
            (seen.entity, j)
            for j in state.add(seen.time, seen.last, seen.value, seen.count, settings)
        ]
    for key, state in store.items():
        if len(key) == 3 and key[0] == "baseline" and key[1] == rule.name and clock is not None:
            found += [(key[2] or None, j) for j in state.judge(clock, settings)]
    if judged is not None:
        judged += found
    batch = max((s.batch for s in observations), default=0)
    return [
        (
            judgement_observation(entity, j, settings, batch),
            judgement_details(rule, j, settings),
            None,
        )
        for entity, j in found
        if j.alert
    ]


def _kept(rule: Rule, seen: Observation, store: dict[tuple[str, ...], Any], window: float) -> bool:
    keys = rule.dedup_key
    if keys:  # as concat_ws joins them: NULLs left out
        row = seen.fields()
        key = "|".join(part for k in keys if (part := text(pick(row, k))) is not None)
    else:
        key = seen.entity or ""
    return store.setdefault(("dedup", rule.name, key), DedupState()).keep(seen.time, window)


def observations_of(frame: pd.DataFrame) -> list[Observation]:
    """A frame's observations in (time, eventID) order."""
    # the row breaks ties: events of one time without an id (real logs have some) keep one order
    frame = frame.sort_values(["eventTime", "eventID", "row"], kind="stable", na_position="first")
    out = []
    columns = ("entity", "value", "eventID", "row", "count", "batch")
    times = [_times(frame[c]) for c in ("eventTime", "start", "last", "clock")]
    for (entity, value, event_id, row, count, batch), time, start, last, clock in zip(
        zip(*(frame[c] for c in columns), strict=True), *times, strict=True
    ):
        out.append(Observation(
            _none(entity), _none(value), time, event_id, _none(row), start, last,
            1 if count is None or count != count else int(count), int(batch), clock,
        ))  # fmt: skip
    return out


def _times(column: pd.Series) -> list[dt.datetime | None]:
    """A column's timestamps as datetimes (None for NULL), converted as one array: one
    conversion per value took a quarter of the step for a rule with many alerts."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        return [None if v is None or v != v else v for v in column.array.to_pydatetime()]
    return [to_timestamp(v) for v in column]


def _none(value: Any) -> Any:
    return None if value is None or value != value else value


def apply_frame(
    rule: Rule,
    frame: pd.DataFrame,
    store: dict[tuple[str, ...], Any],
    with_state: bool,
    clock: dt.datetime | None = None,
    batch: int = 0,
) -> list[tuple[Any, ...]]:
    """STEP_SCHEMA rows for one key's observations (``frame``, maybe empty: a baseline's
    buckets closed by ``clock``) applied to ``store``."""
    observations = observations_of(frame)
    if observations:
        batch = max(seen.batch for seen in observations)
    judged: list[tuple[str | None, Judgement]] = []
    candidates = apply_rule(rule, observations, store, clock, judged)
    keys = frame["key"] if len(frame) else []
    scope = next((k.split(SCOPE_MARK)[0] for k in keys[:1] if k and SCOPE_MARK in k), None)
    for seen, _, _ in candidates:
        seen.batch = batch
        if rule.kind == "baseline" and scope is not None:  # rule tests: whose case it is
            seen.event_id = f"{scope}{SCOPE_MARK}"
    out = alert_records(rule, candidates)
    if with_state:
        out += state_records(rule, observations, store)
        out += baseline_records(rule, judged, batch)
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
        if state.hasTimedOut:  # a baseline's bucket closed, or its state is due to go
            yield from _timed_out(by_name.get(key[0]), state)
            return
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
        if rule.kind == "baseline":
            store[_BATCH] = max(int(frame["batch"].max()), store.get(_BATCH, 0))
            _due(rule, store, state)
        state.update((base64.b64encode(pickle.dumps(store)).decode("ascii"),))
        if out:  # nothing to yield is fine, and spares pandas an empty concat
            yield pd.DataFrame(out, columns=STEP_COLUMNS)

    return step


_BATCH = ("batch",)  # in a baseline's store: the newest observe batch that reached it


def _due(rule: Rule, store: dict[Any, Any], state) -> None:  # type: ignore[no-untyped-def]
    """Ask Spark to call the key again when the clock (its event-time watermark) passes the
    baseline's next closing bucket or the time to forget it."""
    settings = BaselineSettings.of(rule)
    dues = [s.next_due(settings) for k, s in store.items() if k != _BATCH and k[0] == "baseline"]
    due = min((d for d in dues if d is not None), default=None)
    if due is None:
        return
    millis = int((due - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
    watermark = state.getCurrentWatermarkMs()
    state.setTimeoutTimestamp(max(millis, watermark + 1))


def _timed_out(rule: Rule | None, state) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A baseline key Spark calls back without rows: judge what the clock closed (the clock
    is the watermark: the newest event time seen, less Spark's 1 ms delay); forget the key
    when its rows are all older than its history."""
    import pandas as pd

    if rule is None or not state.exists:
        state.remove()
        return
    store = pickle.loads(base64.b64decode(state.get[0]))
    clock = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=state.getCurrentWatermarkMs() + 1)
    settings = BaselineSettings.of(rule)
    frame = pd.DataFrame({c: [] for c in _OBSERVATION_COLUMNS})
    out = apply_frame(rule, frame, store, True, clock, int(store.get(_BATCH, 0)))
    states = [s for k, s in store.items() if k != _BATCH and k[0] == "baseline"]
    if all(not s.tops and (s.last is None or clock > s.forget_at(settings)) for s in states):
        state.remove()
    else:
        _due(rule, store, state)
        state.update((base64.b64encode(pickle.dumps(store)).decode("ascii"),))
    if out:
        yield pd.DataFrame(out, columns=STEP_COLUMNS)


_OBSERVATION_COLUMNS = (
    "rule", "key", "entity", "value", "eventTime", "eventID", "row", "start", "last", "count",
    "batch", "clock",
)  # fmt: skip
