"""`run`: the rules over historical and new logs with Spark Structured Streaming.

One streaming query. Each rule's query runs over the micro-batch (the ``cloudtrail`` view of
the stream); the rows of all rules are grouped by (rule, key) and a stateful step
(``applyInPandasWithState``, state in Spark's state store) applies them to the key's state in
event-time order (``loader.stream.state``); the alerts go to ``security.alerts``, written
idempotently by their deterministic ``alert_id``. The checkpoint holds which files were read and
the state, so a restarted runner continues where it stopped and a replayed batch adds nothing.

The key is the rule's entity (for an alert rule with ``dedup_key`` and no threshold, that
key), so every piece of state of a key lives in one place.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pickle
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Any

from loader.alerts.model import SOURCES, alert_id_sql, create_alerts_table
from loader.alerts.store import append_new_alerts
from loader.rules.evaluate import dedup_key_sql, quote_name, result_column
from loader.rules.model import Rule
from loader.stream.state import ProfileState, apply_rule, pick, text
from loader.tables.catalog import run_statements
from loader.tables.cloudtrail_ddl import check_identifier, create_database, sql_string

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

OBSERVATION_SCHEMA = "rule string, key string, eventTime timestamp, eventID string, row string"
# The stateful step's output: alerts, and the profile entries a batch changed ("state" rows,
# kept in profile_state_log; seen_count 0 marks an entry forgotten after `expire`).
STEP_SCHEMA = (
    "record string, rule string, entity string, value string, event_id string, "
    "event_time timestamp, account string, region string, source_ip string, details string, "
    "first_seen timestamp, last_seen timestamp, seen_count bigint"
)
STATE_LOG = "profile_state_log"
STATE_VIEW = "profile_state"
STATE_SCHEMA = "store string"


def _group_key(rule: Rule, columns: list[str]) -> str:
    dedup = dedup_key_sql(rule, columns)
    if dedup and rule.kind == "alert" and not rule.values.get("threshold"):
        return dedup
    entity = result_column(columns, rule.values.get("entity"))
    return f"CAST({quote_name(entity)} AS STRING)" if entity else "''"


def observations(spark: SparkSession, rules: list[Rule]) -> DataFrame:
    """Every rule's result rows over the ``cloudtrail`` relation, in one shape."""
    parts = []
    for rule in rules:
        result = spark.sql(rule.sql)
        view = f"__run_{rule.name}"
        result.createOrReplaceTempView(view)
        columns = ", ".join(quote_name(c) for c in result.columns)
        parts.append(
            spark.sql(
                f"SELECT {sql_string(rule.name)} AS rule, "
                f"coalesce({_group_key(rule, result.columns)}, '') AS key, "
                "CAST(eventTime AS TIMESTAMP) AS eventTime, CAST(eventID AS STRING) AS eventID, "
                f"to_json(struct({columns})) AS row FROM {view} WHERE eventTime IS NOT NULL"
            )
        )
    return reduce(lambda a, b: a.unionByName(b), parts)


def make_step(rules: list[Rule]):  # type: ignore[no-untyped-def]
    """The function ``applyInPandasWithState`` calls for each (rule, key) of a batch."""
    import pandas as pd

    by_name = {rule.name: rule for rule in rules}

    def step(key: tuple[str, str], frames: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # type: ignore[no-untyped-def]
        rule = by_name[key[0]]
        store = pickle.loads(base64.b64decode(state.get[0])) if state.exists else {}
        frame = pd.concat(list(frames)).sort_values(["eventTime", "eventID"], kind="stable")
        rows = [
            {**json.loads(raw), "eventTime": moment.to_pydatetime(), "eventID": event_id}
            for raw, moment, event_id in zip(
                frame["row"], frame["eventTime"], frame["eventID"], strict=True
            )
        ]
        alerts = apply_rule(rule, rows, store)
        entity_column = rule.values.get("entity")
        out = []
        if rule.kind == "profile" and rows:
            out += _state_rows(rule, rows, store)
        state.update((base64.b64encode(pickle.dumps(store)).decode("ascii"),))
        for row, value, details in alerts:
            event = {k: v for k, v in row.items() if k not in ("eventTime",)}
            event["eventTime"] = row["eventTime"].isoformat()
            if rule.kind == "profile":
                body: dict[str, Any] = {"event": event, **(details or {})}
                if body.get("last_seen_before") is not None:
                    body["last_seen_before"] = body["last_seen_before"].isoformat()
            elif rule.values.get("threshold"):
                body = {"event": event, "window_seconds": int(rule.values["window"])}
            else:
                body = event
            out.append(
                (
                    "alert",
                    rule.name,
                    None if entity_column is None else text(pick(row, entity_column)),
                    value,
                    row["eventID"],
                    row["eventTime"],
                    text(pick(row, *SOURCES["account"])),
                    text(pick(row, *SOURCES["region"])),
                    text(pick(row, *SOURCES["source_ip"])),
                    json.dumps(body, default=str, sort_keys=True),
                    None,
                    None,
                    None,
                )
            )
        if out:  # nothing to yield is fine, and spares pandas an empty concat
            yield pd.DataFrame(out, columns=[c.split()[0] for c in STEP_SCHEMA.split(", ")])

    return step


def _state_rows(rule: Rule, rows: list[dict[str, Any]], store: dict) -> list[tuple]:  # type: ignore[type-arg]
    """The profile entries this batch touched (their new first/last/count) and those it
    forgot (count 0), after compacting entries older than ``expire``."""
    entity_column = rule.values.get("entity")
    latest = rows[-1]["eventTime"]
    touched: dict[tuple[str, str], None] = {}
    for row in rows:
        entity = text(pick(row, entity_column)) if entity_column else ""
        value = text(pick(row, rule.values["value"]))
        if entity is not None and value is not None:
            touched[(entity, value)] = None
    out = []
    for (kind, name, entity), item in store.items():
        if kind != "profile" or name != rule.name or not isinstance(item, ProfileState):
            continue
        for value in item.compact(latest, float(rule.values["expire"])):
            touched.pop((entity, value), None)
            out.append(_state_row(rule, entity, value, None))
        for touched_entity, value in touched:
            if touched_entity == entity and value in item.values:
                out.append(_state_row(rule, entity, value, item.values[value]))
    return out


def _state_row(rule: Rule, entity: str, value: str, seen: Any) -> tuple:  # type: ignore[type-arg]
    account_wide = rule.values.get("entity") is None
    return (
        "state", rule.name, None if account_wide else entity, value,
        None, None, None, None, None, None,
        seen.first if seen else None, seen.last if seen else None, seen.count if seen else 0,
    )  # fmt: skip


@dataclass
class BatchStatus:
    batch_id: int
    alerts: Counter[str] = field(default_factory=Counter)
    added: int = 0
    seconds: float = 0.0
    newest_event: dt.datetime | None = None

    def render(self) -> str:
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(self.alerts.items())) or "none"
        lag = ""
        if self.newest_event is not None:
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            lag = f", lag {(now - self.newest_event).total_seconds():,.0f} s"
        return (
            f"batch {self.batch_id}: alerts {sum(self.alerts.values())} ({rules}), "
            f"new {self.added}, {self.seconds:.1f} s{lag}"
        )


def _alert_rows_sql(rules: list[Rule], view: str, batch_id: int) -> str:
    meta = " ".join(
        f"WHEN {sql_string(r.name)} THEN {sql_string(s)}"
        for r in rules
        for s in [r.values.get("severity", "medium")]
    )
    noun = " ".join(
        f"WHEN {sql_string(r.name)} THEN {sql_string('new ' + r.values['value'])}"
        for r in rules
        if r.kind == "profile"
    )
    kinds = " ".join(f"WHEN {sql_string(r.name)} THEN {sql_string(r.kind)}" for r in rules)
    noun_sql = f"CASE rule {noun} END" if noun else "CAST(NULL AS STRING)"
    return f"""
SELECT {alert_id_sql("rule", "entity", "value", event_id="event_id")} AS alert_id,
  rule, CASE rule {kinds} END AS kind, CASE rule {meta} END AS severity,
  event_id, event_time, entity, value, account, region, source_ip,
  concat_ws(' ', concat(rule, ':'), entity, {noun_sql}, value) AS title,
  details, CAST({int(batch_id)} AS BIGINT) AS batch_id, current_timestamp() AS created_at
FROM {view}
"""


def profile_state_ddl(db: str) -> list[str]:
    """The log of profile entries each batch changed, and the view of their current values."""
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{STATE_LOG} (rule STRING, entity STRING, "
        "value STRING, first_seen TIMESTAMP, last_seen TIMESTAMP, seen_count BIGINT, "
        "batch_id BIGINT, updated_at TIMESTAMP) USING parquet "
        "COMMENT 'Profile entries as each batch of run left them (seen_count 0: forgotten)'",
        f"CREATE OR REPLACE VIEW {db}.{STATE_VIEW} "
        "COMMENT 'What each profile knows: per rule, entity and value, first and last seen "
        "and how often' AS "
        "SELECT rule, entity, value, first_seen, last_seen, seen_count, updated_at FROM ("
        "SELECT *, row_number() OVER (PARTITION BY rule, entity, value ORDER BY batch_id DESC) "
        f"AS version FROM {db}.{STATE_LOG}) WHERE version = 1 AND seen_count > 0",
    ]


def _write_state(session: SparkSession, rows: DataFrame, db: str, batch_id: int) -> None:
    """Append the batch's profile entries once (a replayed batch finds them written)."""
    table = f"{db}.{STATE_LOG}"
    session.catalog.refreshTable(table)
    if session.table(table).where(f"batch_id = {int(batch_id)}").limit(1).count():
        return
    rows.selectExpr(
        "rule", "entity", "value", "first_seen", "last_seen", "seen_count",
        f"CAST({int(batch_id)} AS BIGINT) AS batch_id", "current_timestamp() AS updated_at",
    ).write.insertInto(table)  # fmt: skip


def start(
    spark: SparkSession,
    events: DataFrame,
    rules: list[Rule],
    database: str,
    checkpoint: str,
    trigger: float | None,
    once: bool,
    report=print,  # type: ignore[no-untyped-def]
):  # type: ignore[no-untyped-def]
    """Start the runner's streaming query over ``events``; returns the query."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    database = check_identifier(database)
    run_statements(
        spark,
        [create_database(database), create_alerts_table(database), *profile_state_ddl(database)],
    )
    events.createOrReplaceTempView("cloudtrail")
    alerts = (
        observations(spark, rules)
        .groupBy("rule", "key")
        .applyInPandasWithState(
            make_step(rules), STEP_SCHEMA, STATE_SCHEMA, "append", GroupStateTimeout.NoTimeout
        )
    )

    def write(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        session = batch.sparkSession
        batch = batch.localCheckpoint()
        _write_state(session, batch.where("record = 'state'"), database, batch_id)
        view = "__run_alerts"
        batch.where("record = 'alert'").createOrReplaceTempView(view)
        rows = session.sql(_alert_rows_sql(rules, view, batch_id)).localCheckpoint()
        status = BatchStatus(batch_id)
        for row in rows.select("rule", "event_time").collect():
            status.alerts[row.rule] += 1
            if status.newest_event is None or row.event_time > status.newest_event:
                status.newest_event = row.event_time
        status.added = append_new_alerts(session, rows, database)
        status.seconds = time.monotonic() - started
        report(status.render())

    writer = alerts.writeStream.foreachBatch(write).option("checkpointLocation", checkpoint)
    if once:
        writer = writer.trigger(availableNow=True)
    elif trigger:
        writer = writer.trigger(processingTime=f"{int(trigger)} seconds")
    query = writer.start()
    spark.catalog.dropTempView("cloudtrail")  # the query keeps its plan; the view must not
    return query  # shadow DATABASE.cloudtrail for the session's other queries
