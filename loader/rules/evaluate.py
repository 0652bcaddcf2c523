"""Batch evaluation of rules: each rule's result turned into alert rows.

- ``alert`` rules: every result row is an alert; with ``threshold``/``window``, a row alerts
  when at least ``threshold`` rows of its entity fall within ``window`` up to it.
- ``profile`` rules: an observation (entity, value, event) alerts when the value was never seen
  for the entity before, or not within ``expire``; nothing alerts while the entity (or, for an
  account-wide profile, the whole profile) is within ``learning`` of its first observation.
  Events are ordered by (eventTime, eventID), so the alerts are those a time-ordered live run
  would raise. An entity's learning starts at its first row in the rule's result, even a row
  whose value is NULL (for an account-wide profile, the profile's first row): such rows are not
  observations, but they say the entity was active, so a rule can profile a few APIs while any
  call of a principal starts its learning.
- ``dedup``: one alert per dedup key (default: the entity) within the window, greedily in time.

A ``scope`` expression over the rule's result splits the events into independent runs (rule
tests use it to evaluate all cases of a rule in one job); by default there is one scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loader.alerts.model import ALERT_COLUMNS, SOURCES, alert_id_sql
from loader.rules.model import Rule
from loader.tables.cloudtrail_ddl import sql_string

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RECENT_VALUES = 5


def quote_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def result_column(columns: list[str], name: str | None) -> str | None:
    """The result's own spelling of ``name`` (Spark resolves names case-insensitively)."""
    if name is None:
        return None
    return next((c for c in columns if c.lower() == name.lower()), None)


def rule_alerts(
    spark: SparkSession, rule: Rule, batch_id: int = 0, scope: str | None = None
) -> DataFrame:
    """The alert rows ``rule`` raises over the relation ``cloudtrail`` of ``spark``."""
    result = spark.sql(rule.sql)
    columns = result.columns
    view = f"__rule_{rule.name}"
    result.createOrReplaceTempView(view)
    entity = result_column(columns, rule.values.get("entity"))
    entity_sql = f"CAST({quote_name(entity)} AS STRING)" if entity else "CAST(NULL AS STRING)"
    originals = ", ".join(quote_name(c) for c in columns)
    scope_sql = f"CAST({scope} AS STRING)" if scope else "CAST(NULL AS STRING)"
    observed = f"SELECT *, {entity_sql} AS __entity, {scope_sql} AS __scope FROM {view}"
    if rule.kind == "profile":
        frame = spark.sql(_profile_sql(rule, columns, observed, entity is not None))
    elif rule.values.get("threshold"):
        frame = spark.sql(_threshold_sql(rule, observed, originals, entity is not None))
    else:
        frame = spark.sql(
            f"SELECT *, CAST(NULL AS STRING) AS __value, to_json(struct({originals})) AS __details "
            f"FROM ({observed})"
        )
    window = float(rule.values.get("dedup") or 0)
    if rule.values.get("threshold"):
        window = max(window, float(rule.values["window"]))
    if window > 0:
        frame = _dedup(frame, rule, columns, window)
    return _alert_rows(spark, frame, rule, columns, batch_id)


def _profile_sql(rule: Rule, columns: list[str], observed: str, per_entity: bool) -> str:
    value = quote_name(result_column(columns, rule.values["value"]) or rule.values["value"])
    learning = int(rule.values["learning"])
    expire = int(rule.values["expire"])
    keep = "__entity IS NOT NULL AND " if per_entity else ""
    scope = "PARTITION BY __scope, __entity" if per_entity else "PARTITION BY __scope"
    return f"""
WITH seen AS (
  SELECT *, CAST({value} AS STRING) AS __value
  FROM ({observed}) WHERE {keep}eventTime IS NOT NULL
), ordered AS (
  SELECT *,
    lag(eventTime) OVER (PARTITION BY __scope, __entity, __value
                         ORDER BY eventTime, eventID) AS __prev,
    min(eventTime) OVER ({scope}) AS __start
  FROM seen
), firsts AS (
  SELECT __scope AS f_scope, __entity AS f_entity, __value AS f_value, eventTime AS f_time
  FROM ordered
  WHERE __value IS NOT NULL AND __prev IS NULL
), news AS (
  SELECT * FROM ordered
  WHERE __value IS NOT NULL AND (__prev IS NULL OR eventTime > __prev + INTERVAL {expire} SECONDS)
    AND eventTime >= __start + INTERVAL {learning} SECONDS
)
SELECT n.*, to_json(named_struct(
    'event', struct({", ".join("n." + quote_name(c) for c in columns)}),
    'first_time_seen', n.__prev IS NULL,
    'last_seen_before', n.__prev,
    'values_before', count(f.f_value),
    'recent_values', slice(transform(array_sort(collect_list(named_struct('t', f.f_time,
        'v', f.f_value)), (a, b) -> CASE WHEN a.t > b.t THEN -1 WHEN a.t < b.t THEN 1 ELSE 0 END),
        x -> x.v), 1, {RECENT_VALUES})
  )) AS __details
FROM news n
LEFT JOIN firsts f
  ON f.f_scope <=> n.__scope AND f.f_entity <=> n.__entity
    AND f.f_time < n.eventTime AND f.f_value <> n.__value
GROUP BY ALL
"""


def _threshold_sql(rule: Rule, observed: str, originals: str, per_entity: bool) -> str:
    window = int(rule.values["window"])
    scope = "PARTITION BY __scope, __entity" if per_entity else "PARTITION BY __scope"
    return f"""
SELECT *, CAST(NULL AS STRING) AS __value,
  to_json(named_struct('event', struct({originals}), 'events_in_window', __n,
    'window_seconds', {window})) AS __details
FROM (
  SELECT *, count(*) OVER ({scope} ORDER BY eventTime
    RANGE BETWEEN INTERVAL {window} SECONDS PRECEDING AND CURRENT ROW) AS __n
  FROM ({observed}) WHERE eventTime IS NOT NULL
) WHERE __n >= {int(rule.values["threshold"])}
"""


def dedup_key_sql(rule: Rule, columns: list[str]) -> str | None:
    """The rule's ``dedup_key`` columns joined into one string; None when it has none."""
    keys = [result_column(columns, k) or k for k in rule.values.get("dedup_key") or ()]
    if not keys:
        return None
    return "concat_ws('|', " + ", ".join(f"CAST({quote_name(k)} AS STRING)" for k in keys) + ")"


def _dedup(frame: DataFrame, rule: Rule, columns: list[str], window: float) -> DataFrame:
    """Keep an alert unless one with the same key was kept less than ``window`` before."""
    key_sql = dedup_key_sql(rule, columns) or "coalesce(__entity, '')"
    keyed = frame.selectExpr("*", f"{key_sql} AS __dedup_key")
    schema = keyed.schema

    def greedy(rows):  # type: ignore[no-untyped-def]
        rows = rows.sort_values(["eventTime", "eventID"], kind="stable")
        kept, last = [], None
        for index, moment in zip(rows.index, rows["eventTime"], strict=True):
            if last is None or (moment - last).total_seconds() >= window:
                kept.append(index)
                last = moment
        return rows.loc[kept]

    return keyed.groupBy("__scope", "__dedup_key").applyInPandas(greedy, schema)


def _alert_rows(
    spark: SparkSession, frame: DataFrame, rule: Rule, columns: list[str], batch_id: int
) -> DataFrame:
    view = f"__alerts_{rule.name}"
    frame.createOrReplaceTempView(view)
    sources = {
        field: next((quote_name(c) for n in names if (c := result_column(columns, n))), "NULL")
        for field, names in SOURCES.items()
    }
    title = (
        f"concat_ws(' ', {sql_string(rule.name + ':')}, __entity, "
        + (
            f"{sql_string('new ' + rule.values['value'])}, __value"
            if rule.kind == "profile"
            else "NULL"
        )
        + ")"
    )
    select = {
        "alert_id": alert_id_sql(sql_string(rule.name), "__entity", "__value"),
        "rule": sql_string(rule.name),
        "kind": sql_string(rule.kind or "alert"),
        "severity": sql_string(rule.values.get("severity", "medium")),
        "event_id": "CAST(eventID AS STRING)",
        "event_time": "CAST(eventTime AS TIMESTAMP)",
        "entity": "__entity",
        "value": "__value",
        "account": f"CAST({sources['account']} AS STRING)",
        "region": f"CAST({sources['region']} AS STRING)",
        "source_ip": f"CAST({sources['source_ip']} AS STRING)",
        "title": title,
        "details": "__details",
        "batch_id": f"CAST({int(batch_id)} AS BIGINT)",
        "created_at": "current_timestamp()",
    }
    assert list(select) == [name for name, _ in ALERT_COLUMNS]
    return spark.sql(
        "SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in select.items()) + f" FROM {view}"
    )
