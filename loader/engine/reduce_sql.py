"""SQL over the sightings of a batch (what the fused pass and the solo rules matched): reduced
to one row per rule, key, entity, value and day; the rows profiles keep; where account-wide
profiles start; and the alert rows the step's alert records become."""

from __future__ import annotations

from loader.engine.plan import Plan
from loader.engine.sql import fused_pass_sql
from loader.rules.model import Rule
from loader.sql import sql_string

_REDUCED = "rule, scope, key, entity, value, eventTime, eventID, row, last, count"


def scoped(scope: str | None) -> str:
    return f"CAST({scope} AS STRING)" if scope else "''"


def reduce_fused_sql(sightings: str, scope: str | None = None) -> str:
    """The fused pass's sightings reduced with fixed-width aggregates only (Spark can then
    hash them: a minimum over a struct holding strings made it sort 2.7M sightings), so a
    per-day profile's first eventID and row are left NULL for :func:`profile_rows_sql`.

    ``scope``, an expression over ``eventID``, splits the events into independent runs (rule
    tests evaluate all their cases in one batch that way); by default there is one."""
    event = "CASE WHEN day IS NULL THEN {} END"
    return (
        f"SELECT rule, scope, key, entity, value, first AS eventTime, "
        f"id AS eventID, row, last, count FROM (\n"
        f"SELECT rule, {scoped(scope)} AS scope, key, entity, value, day, "
        f"{event.format('eventID')} AS id, {event.format('row')} AS row, "
        f"{event.format('eventTime')} AS at, "
        "min(eventTime) AS first, max(eventTime) AS last, count(*) AS count\n"
        f"FROM {sightings} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)"
    )


def reduce_solo_sql(sightings: str, scope: str | None = None) -> str:
    """A solo rule's sightings reduced as :func:`reduce_fused_sql` does, its first row kept
    directly (solo rules are few; the minimum over a struct costs a sort)."""
    event = "CASE WHEN day IS NULL THEN {} END"
    return (
        f"SELECT rule, scope, key, entity, value, first.eventTime AS eventTime, "
        f"first.eventID AS eventID, first.row AS row, last, count FROM (\n"
        f"SELECT rule, {scoped(scope)} AS scope, key, entity, value, day, "
        f"{event.format('eventID')} AS id, {event.format('row')} AS same_row, "
        f"{event.format('eventTime')} AS at, "
        "min(named_struct('eventTime', eventTime, 'eventID', eventID, 'row', row)) AS first, "
        "max(eventTime) AS last, count(*) AS count\n"
        f"FROM {sightings} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)"
    )


def profile_rows_sql(plan: Plan, events: str, firsts: str, scope: str | None = None) -> str:
    """The first sightings of the fused profiles (``firsts``: their reduced rows, without a
    row, and for a per-day profile without an eventID) completed: among the sightings at their
    first time, the one with the lowest eventID (then row), from a pass over only the events at
    those times."""
    profiles = [r for r in plan.fused if r.kind == "profile"]
    chosen = (
        f"(SELECT /*+ BROADCAST(t) */ e.* FROM {events} e "
        f"LEFT SEMI JOIN (SELECT DISTINCT eventTime FROM {firsts}) t "
        "ON e.eventTime = t.eventTime)"
    )
    passed = fused_pass_sql(plan, chosen, profiles, profile_rows=True)
    same = " AND ".join(f"f.{c} <=> s.{c}" for c in ("key", "entity", "value"))
    group = "f.rule, f.scope, f.key, f.entity, f.value, f.eventTime, f.last, f.count"
    return (
        "SELECT rule, scope, key, entity, value, eventTime, first.eventID AS eventID, "
        "first.row AS row, last, count FROM (\n"
        f"SELECT /*+ BROADCAST(f) */ {group}, "
        "min(named_struct('eventID', s.eventID, 'row', s.row)) AS first\n"
        f"FROM {firsts} f JOIN (SELECT *, {scoped(scope)} AS scope FROM (\n{passed}\n)) s\n"
        f"ON f.rule = s.rule AND f.scope = s.scope AND {same} AND f.eventTime = s.eventTime "
        "AND (f.eventID IS NULL OR f.eventID = s.eventID)\n"
        f"GROUP BY {group})"
    )


def starts_sql(reduced: str, rules: list[str]) -> str:
    """Where each account-wide profile's rows start (rows with or without a value: both start
    its learning), per scope and account (the entity; NULL organization-wide)."""
    names = ", ".join(sql_string(r) for r in rules)
    return (
        f"SELECT rule, scope, entity, min(eventTime) AS start FROM {reduced} "
        f"WHERE rule IN ({names}) GROUP BY rule, scope, entity"
    )


# --- alert rows -------------------------------------------------------------------------------


def alert_rows_sql(rules: list[Rule], view: str) -> str:
    """``security.alerts`` rows from the step's "alert" records in ``view``."""
    from loader.alerts.model import alert_id_sql

    def case(pairs: list[tuple[str, str]], default: str = "CAST(NULL AS STRING)") -> str:
        if not pairs:
            return default
        return (
            "CASE rule "
            + " ".join(f"WHEN {sql_string(n)} THEN {sql_string(v)}" for n, v in pairs)
            + " END"
        )

    severity = case([(r.name, (r.severity or "medium")) for r in rules])
    kind = case([(r.name, r.kind or "alert") for r in rules])
    noun = case([(r.name, "new " + r.value) for r in rules if r.kind == "profile"])
    title = f"concat_ws(' ', concat(rule, ':'), entity, {noun}, value)"
    baselines = [r.name for r in rules if r.kind == "baseline"]
    if baselines:  # a bucket, not an event: its summary says what departed from what
        names = ", ".join(sql_string(n) for n in baselines)
        title = (
            f"CASE WHEN rule IN ({names}) THEN concat_ws(' ', concat(rule, ':'), entity, "
            f"get_json_object(details, '$.summary')) ELSE {title} END"
        )
    return f"""
SELECT {alert_id_sql("rule", "entity", "value", event_id="event_id")} AS alert_id,
  rule, {kind} AS kind, {severity} AS severity,
  event_id, event_time, entity, value, account, region, source_ip,
  {title} AS title,
  details, batch AS batch_id, current_timestamp() AS created_at
FROM {view}
"""
