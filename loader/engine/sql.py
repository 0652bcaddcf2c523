"""The SQL text of a batch's passes over the events, from a :class:`~loader.engine.plan.Plan`.

Every pass produces *sightings*, one per rule and matching result row, with the same columns:
``rule, key, entity, value, day, eventTime, eventID, row``. ``key`` is what the stateful step
groups by (the entity; an account-wide profile's value; an alert's dedup key), ``row`` the
rule's result row as JSON. A profile's sightings are reduced to one per entity, value and day
(:mod:`loader.engine.reduce_sql`): only a day's first sighting of a value can alert when
``expire`` is a day or more. The fused pass leaves a profile's ``row`` out (building the JSON
of all 2.7M sightings of 300k events cost more than the rest of the pass); `profile_rows_sql`
builds it afterwards, for the first sightings only.

Pure text, so the shape of every query is tested without a JVM.
"""

from __future__ import annotations

from loader.engine.plan import Plan
from loader.engine.planned import RulePlan, mentions
from loader.rules.keys import ACCOUNT_COLUMNS
from loader.rules.model import Rule
from loader.sql import quote_name, sql_string

DAY = 86400.0
SIGHTING_COLUMNS = ("rule", "key", "entity", "value", "day", "eventTime", "eventID", "row")
OBSERVATION_SCHEMA = (
    "rule string, key string, entity string, value string, eventTime timestamp, "
    "eventID string, row string, start timestamp, last timestamp, count bigint, batch bigint, "
    "clock timestamp"
)  # clock: the newest event time seen up to this batch (baselines judge buckets by it)
SCOPE_MARK = "\u00a7"  # between a scope and a key: "case 3§arn:aws:iam::..."
SIGHTING_TYPE = (
    "struct<rule:string,key:string,entity:string,value:string,day:int,"
    "eventTime:timestamp,eventID:string,row:string>"
)


def account_wide(rule: Rule) -> bool:
    """A profile or baseline without an entity: one for each account (``scope: account``)
    or one for the whole organization."""
    return rule.kind in ("profile", "baseline") and not rule.entity


_account_columns: dict[str, str | None] = {}


def scope_column(rule: Rule) -> str | None:
    """The result column an account-wide rule of ``scope: account`` is split by (the first of
    ACCOUNT_COLUMNS its result has; a ``SELECT *`` has recipientAccountId); None when the
    rule is not account-wide, is organization-wide, or its result names no account."""
    if not account_wide(rule) or rule.scope == "organization":
        return None
    if rule.sql not in _account_columns:
        _account_columns[rule.sql] = _result_account_column(rule.sql)
    return _account_columns[rule.sql]


def _result_account_column(sql: str) -> str | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.ParseError:
        return None
    if any(isinstance(e, exp.Star) for e in getattr(tree, "expressions", [])):
        return ACCOUNT_COLUMNS[0]
    names = {n.lower(): n for n in tree.named_selects}
    return next((names[c.lower()] for c in ACCOUNT_COLUMNS if c.lower() in names), None)


def per_day(rule: Rule) -> bool:
    """Whether a profile's sightings can be reduced to one per value and day."""
    return rule.kind == "profile" and float(rule.expire) >= DAY


def bucket_sql(rule: Rule, time: str) -> str | None:
    """The reduction's period of a sighting at ``time``: a per-day profile's day, a baseline's
    bucket (its number since 1970, UTC); None when sightings are kept per event."""
    if rule.kind == "baseline":
        seconds = int(float(rule.bucket))
        return f"CAST(floor(unix_seconds(CAST({time} AS TIMESTAMP)) / {seconds}) AS INT)"
    if per_day(rule):
        return f"unix_date(CAST({time} AS DATE))"
    return None


def _key_sql(rule: Rule, dedup: str | None) -> str:
    """What the stateful step groups a rule's sightings by, when it is not what
    :func:`derived_key_sql` makes of the entity and value: an alert's ``dedup_key``."""
    if dedup and rule.kind == "alert" and not rule.threshold:
        return f"coalesce({dedup}, '')"
    return "CAST(NULL AS STRING)"


def shared_profile(rule: Rule) -> bool:
    """An account-wide profile: its values are shared by an account (its ``entity`` in the
    observations) or the organization, so each value is a key of its own."""
    return rule.kind == "profile" and account_wide(rule)


def derived_key_sql(account_wide_rules: list[str]) -> str:
    """The key of a reduced sighting that has none: an account-wide profile's value (after its
    account, with ``scope: account``), else the entity ('' without one)."""
    if not account_wide_rules:
        return "coalesce(key, entity, '')"
    names = ", ".join(sql_string(n) for n in account_wide_rules)
    return (
        f"coalesce(key, CASE WHEN rule IN ({names}) THEN "
        "concat_ws('|', entity, coalesce(value, '')) ELSE coalesce(entity, '') END)"
    )


def _dedup_sql(rule: Rule, column_of) -> str | None:  # type: ignore[no-untyped-def]
    keys = rule.dedup_key or ()
    if not keys:
        return None
    return "concat_ws('|', " + ", ".join(f"CAST({column_of(k)} AS STRING)" for k in keys) + ")"


def _columns(rule: Rule, column_of) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    entity = rule.entity or scope_column(rule)
    value = rule.value if rule.kind == "profile" else rule.top
    return {
        "entity": column_of(entity) if entity else None,
        "value": column_of(value) if value else None,
    }


def _sighting(
    rule: Rule, column_of, time: str, event_id: str, row: str | None, slim: bool = False
) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(name, SQL) of a sighting's fields; ``column_of`` maps a result column to its SQL."""
    column = _columns(rule, column_of)
    entity = column["entity"]
    day = bucket_sql(rule, time)
    return [
        ("rule", sql_string(rule.name)),
        ("key", _key_sql(rule, _dedup_sql(rule, column_of))),
        ("entity", f"CAST({entity} AS STRING)" if entity else "CAST(NULL AS STRING)"),
        (
            "value",
            f"CAST({column['value']} AS STRING)" if column["value"] else "CAST(NULL AS STRING)",
        ),
        ("day", day or "CAST(NULL AS INT)"),
        ("eventTime", f"CAST({time} AS TIMESTAMP)"),
        # a per-day profile's sightings are reduced to their first, found again later
        ("eventID", "CAST(NULL AS STRING)" if slim and day else f"CAST({event_id} AS STRING)"),
        ("row", row or "CAST(NULL AS STRING)"),
    ]


def _required(rule: Rule, column_of, time: str) -> str:  # type: ignore[no-untyped-def]
    """What a result row needs to be a sighting at all."""
    need = [f"{time} IS NOT NULL"]
    if rule.kind in ("profile", "baseline") and rule.entity:
        need.append(f"{column_of(rule.entity)} IS NOT NULL")
    return " AND ".join(need)


# --- the fused pass ---------------------------------------------------------------------------


def _fused_branch(plan: RulePlan, with_row: bool, flag: str, ids: bool = False) -> str:
    def column_of(name: str) -> str:
        sql = plan.output(name)
        assert sql is not None, (plan.name, name)  # validation requires the header's columns
        return f"({sql})"

    time, event_id = column_of("eventTime"), column_of("eventID")
    row = None
    if with_row:
        fields = ", ".join(f"{sql_string(name)}, {sql}" for name, sql in plan.outputs)
        row = f"to_json(named_struct({fields}))"
    fields = _sighting(plan.rule, column_of, time, event_id, row, slim=not (with_row or ids))
    struct = ", ".join(f"{sql_string(name)}, {sql}" for name, sql in fields)
    return f"IF({flag},\n    named_struct({struct}), NULL)"


def _match(plan: RulePlan) -> str:
    """SQL true where ``plan``'s rule matches an event."""

    def column_of(name: str) -> str:
        return f"({plan.output(name)})"

    required = _required(plan.rule, column_of, column_of("eventTime"))
    return f"({plan.condition}) IS TRUE AND {required}"


def fused_pass_sql(
    plan: Plan,
    events: str,
    rules: list[RulePlan] | None = None,
    profile_rows: bool = False,
    ids: bool = False,
) -> str:
    """The fused rules' (or ``rules``') sightings over ``events`` (the enriched events' view),
    each event through each condition once: one job, a scan of the cached events for every
    RULES_PER_SCAN alert rules and one for the profiles, because alerts and profiles want
    opposite things. An event matches an alert rule rarely, so the
    alerts' pass first drops the events no alert can match (a filter that Spark compiles into
    one predicate) and builds sightings for the few left; an event matches most profiles, so the
    profiles' pass has no such filter. On 1M cached events: both as one pass 15.8 s, alerts with
    their filter 3.3 s, profiles 4.1 s, the two as this union 7.1 s.

    The profiles' ``row`` is built only when ``profile_rows`` (the second pass, over the first
    sightings' events); alerts always carry theirs. A per-day profile's sightings leave their
    eventID out unless ``ids`` (a scope, read from the eventID, needs it)."""
    chosen = plan.fused if rules is None else rules
    alerts = [r for r in chosen if r.kind != "profile"]  # and baselines: few rules match
    profiles = [r for r in chosen if r.kind == "profile"]
    parts = [_pass_sql(plan, events, chunk, profile_rows, True, ids) for chunk in _chunks(alerts)]
    if profiles:
        parts.append(_pass_sql(plan, events, profiles, profile_rows, profile_rows, ids))
    return "\nUNION ALL\n".join(parts)


# Alert rules per scan of the cached events. A projection of every rule's condition is one
# generated Java method; past a few dozen rules it grows beyond the size the JVM compiles to
# machine code (8,000 bytes of bytecode) and runs interpreted. Over 300k cached events, the
# fused pass of 200 rules (the bundled pack and bench/detect.py's generated rules) took 29.6 s
# as one scan, 21.9 s in scans of 32 rules, 18.7 s in scans of 16, each scan with its own
# filter on the eventNames its rules name.
RULES_PER_SCAN = 16


def _chunks(alerts: list[RulePlan]) -> list[list[RulePlan]]:
    """``alerts`` in groups of at most RULES_PER_SCAN: rules that name their eventNames
    ordered by them (so a group's names, and the events its filter keeps, stay few), then the
    rules that name none."""
    named = sorted((r for r in alerts if r.names), key=lambda r: (r.names, r.name))
    unnamed = [r for r in alerts if not r.names]
    return [
        group[i : i + RULES_PER_SCAN]
        for group in (named, unnamed)
        for i in range(0, len(group), RULES_PER_SCAN)
    ]


def _pass_sql(
    plan: Plan,
    events: str,
    chosen: list[RulePlan],
    profile_rows: bool,
    prefilter: bool,
    ids: bool = False,
) -> str:
    """One scan of ``events`` giving the sightings of ``chosen``: ``prefilter`` first drops
    the events no rule can match; a projection Spark compiles tests each rule's condition once
    per event (a flag per rule); the sightings of the rules whose flag is set are built and
    exploded (``filter`` over the array is not compiled, so it only checks flags: on 1M
    events with 32 alert rules, building the sightings inside it took 14.4 s)."""
    flags = [f"__tsa_match_{i}" for i in range(len(chosen))]
    branches = ",\n  ".join(
        _fused_branch(r, profile_rows or r.kind == "alert", flag, ids)
        for r, flag in zip(chosen, flags, strict=True)
    )
    matches = "".join(
        f",\n    {_match(r)} AS {flag}" for r, flag in zip(chosen, flags, strict=True)
    )
    shared = [s for s in plan.shared if any(mentions(_text(r), s.column) for r in chosen)]
    computed = "".join(
        f",\n    {s.sql if s.guard == 'TRUE' else f'CASE WHEN {s.guard} THEN {s.sql} END'} "
        f"AS {s.column}"
        for s in shared
    )
    where = ""
    if prefilter:
        where = "\n  WHERE " + _prefilter(chosen)
    fields = ", ".join(f"x.{c}" for c in SIGHTING_COLUMNS)
    return (
        f"SELECT {fields}\nFROM (\nSELECT explode(filter(array(\n  {branches}), "
        f"s -> s IS NOT NULL)) AS x\nFROM (\n  SELECT *{matches}\n  FROM (\n  SELECT *"
        + computed
        + f"\n  FROM {events}{where}\n)))"
    )


def _prefilter(chosen: list[RulePlan]) -> str:
    """True for the events some rule of ``chosen`` can match: the eventNames rules name, one
    hash-set test (most rules name theirs), or the condition of a rule that names none."""
    tests = []
    for folded, subject in ((False, "eventName"), (True, "lower(eventName)")):
        names = sorted({n for r in chosen if r.names and r.names_folded == folded for n in r.names})
        if names:
            tests.append(f"{subject} IN ({', '.join(sql_string(n) for n in names)})")
    tests += [f"({r.filter})" for r in chosen if not r.names]
    return "\n     OR ".join(tests) if tests else "FALSE"


def _text(plan: RulePlan) -> str:
    return plan.condition + " " + " ".join(sql for _, sql in plan.outputs)


# --- a solo rule ------------------------------------------------------------------------------


def solo_sql(plan: RulePlan) -> str:
    """A solo rule's query as it is (over ``cloudtrail``), its result rows made sightings."""
    rule = plan.rule

    def column_of(name: str) -> str:
        return f"r.{quote_name(name)}"

    time, event_id = column_of("eventTime"), column_of("eventID")
    fields = _sighting(rule, column_of, time, event_id, "to_json(struct(r.*))")
    select = ",\n  ".join(f"{sql} AS {name}" for name, sql in fields)
    return (
        f"SELECT\n  {select}\nFROM (\n{plan.query}\n) r\nWHERE {_required(rule, column_of, time)}"
    )


# --- reduction and the profiles' rows ---------------------------------------------------------
#
# A profile's sightings are reduced to one per rule, key, entity, value and day: the first (by
# eventTime, eventID), the last time and how many. An alert's are reduced to one per event and
# result row (identical rows of one event, a duplicate delivery, become one with a count); so
# are a profile's whose ``expire`` is under a day.
