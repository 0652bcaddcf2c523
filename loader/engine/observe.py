"""A batch of events through a :class:`~loader.engine.plan.Plan`: the observations the
stateful step takes, for `detect` (the whole history as one batch) and `run` (each
micro-batch) alike.

Jobs, in order: the enrichment lookups (once per distinct argument), the fused pass with its
reduction (one job for all fused rules), each solo rule (one job each), the fused profiles'
result rows for their first sightings, and the observations put together.

A rule that fails at runtime is found and left out; the others still run. A solo rule is its
own job, so its error names it. When the fused pass fails, each fused rule is run alone over
the batch to find which fail; if none fails alone (the fusion itself went wrong), the fused
rules are run as solo rules. With ``strict`` the first failure stops everything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from loader.engine import reduce_sql as reduce
from loader.engine import sql as text
from loader.engine.lookups import enrich
from loader.engine.plan import Plan
from loader.engine.planned import EVENTS, SOLO
from loader.engine.scratch import Scratch
from loader.engine.timing import phase
from loader.errors import TsaError, first_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# (rule, scope, account or None) -> the first row of an account-wide profile
Starts = dict[tuple[str, str, str | None], dt.datetime]
Begun = dict[tuple[str, str | None], dt.datetime]  # the same for scope '' (a runner's batches)


@dataclass
class Observed:
    """What a batch gave: its observations (OBSERVATION_SCHEMA, checkpointed), the rules that
    failed (name -> "path: error") and where each account-wide profile starts (scope '')."""

    observations: DataFrame
    errors: dict[str, str] = field(default_factory=dict)
    starts: Begun = field(default_factory=dict)


def observe(
    events: DataFrame,
    plan: Plan,
    batch: int,
    *,
    enrichment: Any = None,
    scope: str | None = None,
    starts: Begun | None = None,
    strict: bool = False,
    clock: dt.datetime | None = None,
) -> Observed:
    """The observations of ``events`` (cached by the caller: several jobs read them) for every
    rule of ``plan``. ``starts``: where account-wide profiles started in earlier batches.
    ``scope``: an expression over ``eventID`` splitting the events into independent runs.
    ``clock``: the newest event time seen so far (a runner's); by default the newest of
    ``events`` in each scope.

    Raises:
        TsaError: with ``strict``, a rule failed (named with its file).
    """
    from pyspark.errors import PySparkException

    session = events.sparkSession
    scratch = Scratch(session)
    errors: dict[str, str] = {}
    current = plan
    # Spark's own common-subexpression elimination evaluates a repeated expression for every
    # event, even where the condition guarding it is false: over 1M events the fused filter of
    # 31 alert rules took 4.3 s with it and 1.35 s without. The plan shares what is worth
    # sharing itself, under guards.
    conf = "spark.sql.subexpressionElimination.enabled"
    previous = session.conf.get(conf)
    session.conf.set(conf, "false")
    try:
        for _ in range(len(plan.rules) + 2):
            try:
                return _observe(events, current, batch, scratch, enrichment, scope, starts,
                                strict, errors, clock)  # fmt: skip
            except PySparkException as exc:
                scratch.drop()
                failing = _failing(events, current, scratch)
                if strict and failing:
                    raise TsaError(_strict_message(failing)) from None
                if failing:
                    errors.update(failing)
                    current = current.without(failing)
                elif current.fused:  # no rule fails alone: evaluate them alone
                    current = _unfused(current, first_line(exc))
                else:
                    raise
        raise TsaError("the rules kept failing; see the errors above")  # pragma: no cover
    finally:
        session.conf.set(conf, previous)
        scratch.drop()


def _strict_message(failing: dict[str, str]) -> str:
    return "rule failed (--strict): " + "; ".join(f"{n} ({e})" for n, e in failing.items())


def _unfused(plan: Plan, error: str) -> Plan:
    reason = f"the fused pass failed ({error}); run alone"
    rules = [
        replace(r, group=SOLO, reason=reason, query=r.rule.sql, lookups=())
        if r.group != SOLO
        else r
        for r in plan.rules
    ]
    return Plan(rules, [lk for lk in plan.lookups if any(lk.column in r.lookups for r in rules)],
                [], plan.fuse)  # fmt: skip


def _failing(events: DataFrame, plan: Plan, scratch: Scratch) -> dict[str, str]:
    """Each fused rule run alone, as written, over the batch: those that fail."""
    from pyspark.errors import PySparkException

    scratch.bind(events, EVENTS)
    failing = {}
    for rule in plan.fused:
        try:
            events.sparkSession.sql(rule.rule.sql).write.format("noop").mode("overwrite").save()
        except PySparkException as exc:
            failing[rule.name] = f"{rule.rule.path}: {first_line(exc)}"
    return failing


def _observe(
    events: DataFrame,
    plan: Plan,
    batch: int,
    scratch: Scratch,
    enrichment: Any,
    scope: str | None,
    starts: dict[str, dt.datetime] | None,
    strict: bool,
    errors: dict[str, str],
    clock: dt.datetime | None = None,
) -> Observed:
    from pyspark.errors import PySparkException

    session = events.sparkSession
    with phase("lookups"):
        enriched = enrich(events, plan.lookups, scratch, enrichment)
    enriched_view = scratch.view(enriched, "enriched")
    parts = []
    if plan.fused:
        parts.append(_fused(session, plan, enriched_view, scratch, scope))
    for rule in plan.solo:
        scratch.bind(enriched if rule.lookups else events, EVENTS)
        try:
            sightings = scratch.view(session.sql(text.solo_sql(rule)), "solo")
            with phase("solo rules"):
                reduced = session.sql(reduce.reduce_solo_sql(sightings, scope)).localCheckpoint()
            parts.append(reduced)
        except PySparkException as exc:
            error = f"{rule.rule.path}: {first_line(exc)}"
            if strict:
                raise TsaError(_strict_message({rule.name: error})) from None
            errors[rule.name] = error
    if not parts:
        empty = session.createDataFrame([], text.OBSERVATION_SCHEMA)
        return Observed(empty, dict(errors), dict(starts or {}))
    clocks = _clocks(session, plan, events, scope, clock)
    reduced = parts[0]
    for part in parts[1:]:
        reduced = reduced.unionByName(part)
    reduced_view = scratch.view(reduced, "reduced")
    with phase("observations"):
        found = _starts(session, plan, reduced_view, starts)
        observations = session.sql(_assemble_sql(plan, reduced_view, found, batch, clocks))
        observations = observations.localCheckpoint()
    unscoped = {(rule, who): at for (rule, scope, who), at in found.items() if scope == ""}
    return Observed(observations, dict(errors), unscoped)


def _clocks(
    session: Any, plan: Plan, events: DataFrame, scope: str | None, clock: dt.datetime | None
) -> dict[str, dt.datetime]:
    """scope -> the clock baselines judge their buckets by: ``clock`` (a runner's newest event
    so far), else the newest event of each scope (one small job, only for baselines)."""
    if clock is not None:
        return {"": clock}
    if not any(r.kind == "baseline" for r in plan.rules):
        return {}
    rows = (
        events.selectExpr(f"{reduce.scoped(scope)} AS scope", "CAST(eventTime AS TIMESTAMP) AS t")
        .groupBy("scope")
        .agg({"t": "max"})
        .collect()
    )
    return {row[0]: row[1] for row in rows if row[1] is not None}


def _fused(session: Any, plan: Plan, events: str, scratch: Scratch, scope: str | None) -> DataFrame:
    """The fused rules' reduced sightings: their pass over the events and its reduction (one
    job), then the profiles' first sightings completed by a pass over their events only."""
    sql = text.fused_pass_sql(plan, events, ids=scope is not None)
    sightings = scratch.view(session.sql(sql), "fused")
    with phase("fused pass"):
        reduced = session.sql(reduce.reduce_fused_sql(sightings, scope)).localCheckpoint()
    return _completed(session, plan, events, scratch, scope, reduced)


def _completed(
    session: Any, plan: Plan, events: str, scratch: Scratch, scope: str | None, reduced: Any
) -> DataFrame:
    """``reduced`` with the per-event profiles' first sightings given their eventID and row."""
    profiles = [r.name for r in plan.fused if r.kind == "profile"]
    if not profiles:
        return reduced
    names = ", ".join(text.sql_string(n) for n in profiles)
    incomplete = f"rule IN ({names}) AND value IS NOT NULL"
    reduced_view = scratch.view(reduced, "fusedreduced")
    firsts = scratch.view(session.sql(f"SELECT * FROM {reduced_view} WHERE {incomplete}"), "firsts")
    with phase("profile rows"):
        completed = session.sql(
            reduce.profile_rows_sql(plan, events, firsts, scope)
        ).localCheckpoint()
    done = scratch.view(completed, "completed")
    return session.sql(
        f"SELECT * FROM {reduced_view} WHERE NOT ({incomplete}) UNION ALL SELECT * FROM {done}"
    )


def _starts(session: Any, plan: Plan, reduced: str, before: Begun | None) -> Starts:
    """Where each account-wide profile's rows start, per scope and account: this batch's first
    row, or an earlier batch's (scope '' only: scoped runs are rule tests, one batch each)."""
    names = [r.name for r in plan.rules if text.shared_profile(r.rule)]
    found: Starts = {}
    if names:
        rows = session.sql(reduce.starts_sql(reduced, names)).collect()
        found = {
            (row.rule, row.scope, row.entity): row.start for row in rows if row.start is not None
        }
    for (rule, who), moment in (before or {}).items():
        if rule in names:
            known = found.get((rule, "", who))
            found[(rule, "", who)] = min(known, moment) if known else moment
    return found


_SEP = "|"  # rule names, test scopes and account ids hold none


def _start_key(rule: str, scope: str, who: str | None) -> str:
    return _SEP.join((rule, scope, who or ""))


def _timestamp(moment: dt.datetime) -> str:
    return f"timestamp {text.sql_string(moment.isoformat(sep=' '))}"


def _assemble_sql(
    plan: Plan, reduced: str, starts: Starts, batch: int, clocks: dict[str, dt.datetime]
) -> str:
    """The observations: a scope prefixed to the key, an account-wide profile's start (per
    account) attached and its rows without a value (they only moved the start) dropped, and
    the clock of the scope."""
    wide = [r.name for r in plan.rules if text.shared_profile(r.rule)]
    key = text.derived_key_sql(wide)
    key = f"CASE WHEN scope = '' THEN {key} ELSE concat(scope, '{text.SCOPE_MARK}', {key}) END"
    start = "CAST(NULL AS TIMESTAMP)"
    if starts:  # few entries (rules x accounts): a map of literals, folded once by Spark
        pairs = ", ".join(
            f"{text.sql_string(_start_key(rule, scope, who))}, {_timestamp(moment)}"
            for (rule, scope, who), moment in sorted(starts.items(), key=str)
        )
        start = (
            f"try_element_at(map({pairs}), concat_ws('{_SEP}', rule, scope, coalesce(entity, '')))"
        )
    cases = " ".join(
        f"WHEN {text.sql_string(scope)} THEN {_timestamp(moment)}"
        for scope, moment in sorted(clocks.items())
    )
    clock = f"CASE scope {cases} END" if cases else "CAST(NULL AS TIMESTAMP)"
    dropped = ""
    if wide:
        names = ", ".join(text.sql_string(n) for n in wide)
        dropped = f" WHERE NOT (rule IN ({names}) AND value IS NULL)"
    return (
        f"SELECT rule, {key} AS key, entity, value, eventTime, eventID, row, "
        f"{start} AS start, last, count, CAST({int(batch)} AS BIGINT) AS batch, "
        f"{clock} AS clock FROM {reduced}{dropped}"
    )
