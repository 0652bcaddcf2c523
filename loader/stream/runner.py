"""`run`: the rules over historical and new logs with Spark Structured Streaming.

Two streaming queries, one checkpoint folder:

1. **observe** (``CHECKPOINT/observe``): new log files → each micro-batch's events are cached
   once (only the columns the rules read) and every rule's query runs over them as the
   ``cloudtrail`` view. A rule that fails is named with its file and left out of the batch (or,
   with ``--strict``, stops the runner). A profile's rows are reduced to one per entity, value
   and day: only a day's first sighting of a value can alert. The rows, with a status row for
   the batch (events, files, newest event, failed rules), are written as Parquet to
   ``CHECKPOINT/observations/batch-N``, made visible at once by a rename; a replayed batch finds
   its folder there and writes nothing.
2. **apply** (``CHECKPOINT/state``): those files, grouped by (rule, key), go through a stateful
   step (``applyInPandasWithState``, state in Spark's RocksDB state store) that applies them to
   the key's state in event-time order (``loader.stream.state``). Alerts go to
   ``security.alerts`` (idempotent by the deterministic ``alert_id``), the profile entries a
   batch changed to ``security.profile_state_log`` (idempotent per batch), and one status line
   per batch is printed.

The key is the rule's entity; for an account-wide profile, the value (the profile's start is
carried in the rows, so no key holds the whole profile); for an alert rule with ``dedup_key``
and no threshold, that key. A batch touches only the keys it has rows for, so its cost follows
the batch, not the size of the state.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pickle
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loader.alerts.delivery import Deliverer
from loader.alerts.model import SOURCES, alert_id_sql, create_alerts_table
from loader.alerts.outbox import DeliveryLoop, create_deliveries_table
from loader.alerts.store import append_new_alerts
from loader.errors import TsaError, first_line
from loader.rules.detect import cached_for_rules
from loader.rules.evaluate import dedup_key_sql, quote_name
from loader.rules.model import Rule
from loader.rules.validate import columns_used
from loader.stream.state import COUNT, LAST, START, ProfileState, apply_rule, pick, text
from loader.tables.catalog import run_statements
from loader.tables.cloudtrail_ddl import check_identifier, create_database, sql_string

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

OBSERVATION_SCHEMA = (
    "rule string, key string, eventTime timestamp, eventID string, row string, "
    "start timestamp, last timestamp, count bigint, batch bigint"
)
# The stateful step's output: alerts, the profile entries a batch changed ("state" rows, kept in
# profile_state_log; seen_count 0 marks an entry forgotten after `expire`), the observe
# query's batch status ("status") and rules that failed in the step ("error").
STEP_SCHEMA = (
    "record string, rule string, entity string, value string, event_id string, "
    "event_time timestamp, account string, region string, source_ip string, details string, "
    "first_seen timestamp, last_seen timestamp, seen_count bigint, batch bigint"
)
STEP_COLUMNS = [c.split()[0] for c in STEP_SCHEMA.split(", ")]
STATE_LOG = "profile_state_log"
STATE_VIEW = "profile_state"
STATE_SCHEMA = "store string"
STATUS_RULE = "__batch"
DAY = 86400.0
OBSERVE, OBSERVATIONS, APPLY = "observe", "observations", "state"
STARTS_FILE = "_starts.json"
STATE_PARTITIONS_CONF = "spark.tsa.run.statePartitions"
STATE_PARTITIONS_PER_CORE = 4  # the default


def _name(rule: Rule, key: str) -> str:
    """A header-named result column (Spark resolves names case-insensitively)."""
    return quote_name(rule.values[key])


def _account_wide(rule: Rule) -> bool:
    return rule.kind == "profile" and not rule.values.get("entity")


def _key_sql(rule: Rule) -> str:
    if _account_wide(rule):
        return f"CAST({_name(rule, 'value')} AS STRING)"
    dedup = dedup_key_sql(rule, [])
    if dedup and rule.kind == "alert" and not rule.values.get("threshold"):
        return dedup
    return f"CAST({_name(rule, 'entity')} AS STRING)" if rule.values.get("entity") else "''"


def batch_sql(
    rules: list[Rule], batch: int, starts: dict[str, dt.datetime], status: dict[str, Any]
) -> str:
    """One query for a batch: every rule's rows the stateful step needs, and the status row.

    A profile's rows become one per entity, value and day (per row when ``expire`` is shorter
    than a day); an account-wide profile's rows carry where its learning starts (``starts``)."""
    ctes = [f"r{i} AS (\n{rule.sql.strip().rstrip(';')}\n)" for i, rule in enumerate(rules)]
    time_id = "CAST(eventTime AS TIMESTAMP) AS eventTime, CAST(eventID AS STRING) AS eventID"
    batch_sql = f"CAST({int(batch)} AS BIGINT) AS batch"
    parts, profile_rows = [], []
    for i, rule in enumerate(rules):
        name, key = sql_string(rule.name), _key_sql(rule)
        if rule.kind != "profile":
            parts.append(
                f"SELECT {name} AS rule, coalesce({key}, '') AS key, {time_id}, "
                "to_json(struct(*)) AS row, CAST(NULL AS TIMESTAMP) AS start, "
                f"CAST(NULL AS TIMESTAMP) AS last, CAST(NULL AS BIGINT) AS count, {batch_sql} "
                f"FROM r{i} WHERE eventTime IS NOT NULL"
            )
            continue
        value = f"CAST({_name(rule, 'value')} AS STRING)"
        where = "eventTime IS NOT NULL AND " + (
            f"{value} IS NOT NULL"
            if _account_wide(rule)
            else f"{_name(rule, 'entity')} IS NOT NULL"
        )
        day = float(rule.values["expire"]) >= DAY
        bucket = "CAST(to_date(eventTime) AS STRING)" if day else "concat(eventTime, eventID)"
        profile_rows.append(
            f"SELECT {name} AS rule, coalesce({key}, '') AS key, {value} AS value, "
            f"{bucket} AS bucket, {time_id}, to_json(struct(*)) AS row FROM r{i} WHERE {where}"
        )
    if profile_rows:
        ctes.append("p_rows AS (\n" + "\nUNION ALL ".join(profile_rows) + "\n)")
        starts_sql = " ".join(
            f"WHEN {sql_string(rule)} THEN timestamp {sql_string(start.isoformat(sep=' '))}"
            for rule, start in sorted(starts.items())
        )
        parts.append(
            "SELECT rule, key, first.eventTime, first.eventID, first.row, "
            + (f"CASE rule {starts_sql} END" if starts_sql else "CAST(NULL AS TIMESTAMP)")
            + f" AS start, last, count, {batch_sql} FROM ("
            "SELECT rule, key, min_by(named_struct('eventTime', eventTime, 'eventID', eventID, "
            "'row', row), struct(eventTime, eventID)) AS first, max(eventTime) AS last, "
            "count(*) AS count FROM p_rows GROUP BY rule, key, value, bucket)"
        )
    parts.append(
        f"SELECT {sql_string(STATUS_RULE)} AS rule, {sql_string(str(batch))} AS key, "
        "CAST(current_timestamp() AS TIMESTAMP) AS eventTime, '' AS eventID, "
        f"{sql_string(json.dumps(status))} AS row, CAST(NULL AS TIMESTAMP) AS start, "
        f"CAST(NULL AS TIMESTAMP) AS last, CAST(NULL AS BIGINT) AS count, {batch_sql}"
    )
    return "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(parts)


def totals_sql(rules: list[Rule]) -> str:
    """The batch's events, files and newest event, and where each account-wide profile's
    rows start (with or without a value: that is where its learning starts)."""
    parts = [
        "SELECT '' AS rule, count(*) AS events, count(DISTINCT source_file) AS files, "
        "max(CAST(eventTime AS TIMESTAMP)) AS time FROM cloudtrail"
    ]
    for rule in rules:
        if _account_wide(rule):
            parts.append(
                f"SELECT {sql_string(rule.name)}, NULL, NULL, min(CAST(eventTime AS TIMESTAMP)) "
                f"FROM (\n{rule.sql.strip().rstrip(';')}\n)"
            )
    return "\nUNION ALL\n".join(parts)


# --- the observe query ------------------------------------------------------------------------


class Folder:
    """A folder on the checkpoint's file system (local, HDFS, ...) through Hadoop's API."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path(path)
        self._fs = self._path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        self._jvm = jvm
        self.path = path

    def child(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def make(self) -> None:
        self._fs.mkdirs(self._path)

    def exists(self, name: str) -> bool:
        return bool(self._fs.exists(self._jvm.org.apache.hadoop.fs.Path(self.child(name))))

    def delete(self, name: str) -> None:
        self._fs.delete(self._jvm.org.apache.hadoop.fs.Path(self.child(name)), True)

    def rename(self, name: str, new: str) -> None:
        path = self._jvm.org.apache.hadoop.fs.Path
        if not self._fs.rename(path(self.child(name)), path(self.child(new))):
            raise TsaError(f"{self.child(name)}: cannot rename to {new}")

    def names(self) -> list[str]:
        if not self._fs.exists(self._path):
            return []
        return [s.getPath().getName() for s in self._fs.listStatus(self._path)]

    def read_text(self, name: str) -> str:
        stream = self._fs.open(self._jvm.org.apache.hadoop.fs.Path(self.child(name)))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode()
        finally:
            stream.close()

    def write_text(self, name: str, content: str) -> None:
        stream = self._fs.create(self._jvm.org.apache.hadoop.fs.Path(self.child(name)), True)
        try:
            stream.write(bytearray(content.encode()))
        finally:
            stream.close()


# Spark writes a checkpoint log file as `.NAME.UUID.tmp` (and its `..NAME.UUID.tmp.crc`), then
# renames it. A runner killed between the two leaves the temp file; Spark 4 then refuses to
# start the query ("checkpoint location should be empty on batch 0") although nothing was
# committed. Such a file never became part of the log, so removing it loses nothing.
_UNFINISHED_WRITE = re.compile(r"^\.\.?\d+(?:\.compact)?\.[0-9a-fA-F-]{36}\.tmp(?:\.crc)?$")
_LOGS = ("offsets", "commits")


def remove_unfinished_writes(spark: SparkSession, checkpoint: str) -> list[str]:
    """Delete what a killed write left in a query checkpoint's offset and commit logs (and
    its sources' logs); returns the paths removed, relative to ``checkpoint``."""
    query = Folder(spark, checkpoint)
    folders = [
        *_LOGS,
        *(f"sources/{name}" for name in Folder(spark, query.child("sources")).names()),
    ]
    removed = []
    for name in folders:
        log = Folder(spark, query.child(name))
        for entry in log.names():
            if _UNFINISHED_WRITE.match(entry):
                log.delete(entry)
                removed.append(f"{name}/{entry}")
    return removed


def _batch_folder(batch: int) -> str:
    return f"batch-{batch:09d}"


def _previous_starts(folder: Folder, batch: int) -> dict[str, dt.datetime]:
    """Where each account-wide profile's learning started, as of the last written batch."""
    done = sorted(n for n in folder.names() if n.startswith("batch-") and n < _batch_folder(batch))
    for name in reversed(done):
        if folder.exists(f"{name}/{STARTS_FILE}"):
            stored = json.loads(folder.read_text(f"{name}/{STARTS_FILE}"))
            return {rule: dt.datetime.fromisoformat(moment) for rule, moment in stored}
    return {}


def observe_batch(
    events: DataFrame,
    batch: int,
    rules: list[Rule],
    folder: Folder,
    strict: bool,
    used: set[str] | None = None,
) -> bool:
    """Write the rule rows of one batch of events to ``observations/batch-N``; False when a
    replay finds them written. ``used``: the event columns the rules read (None: all)."""
    from pyspark.errors import PySparkException

    final, partial = _batch_folder(batch), f"_partial-{batch:09d}"
    if folder.exists(final):
        return False
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    session = events.sparkSession
    keep = None if used is None else used | {"eventtime", "source_file"}
    events, _ = cached_for_rules(events, keep)
    events.createOrReplaceTempView("cloudtrail")
    # A batch's aggregations are small: Spark's 200 shuffle partitions made a 1,000-event batch
    # cost 7.5 s instead of 4.1 s (the query's session is its own: this stays in the query).
    session.conf.set("spark.sql.shuffle.partitions", str(session.sparkContext.defaultParallelism))
    errors: dict[str, str] = {}  # rule -> "path: message"
    starts = _previous_starts(folder, batch)
    good = list(rules)
    try:
        for attempt in (1, 2):
            try:
                totals = session.sql(totals_sql(good)).collect()
                folder.delete(partial)
                summary = {
                    "events": totals[0].events, "files": totals[0].files,
                    "newest": totals[0].time.isoformat() if totals[0].time else None,
                    "started": started.isoformat(), "errors": errors,
                }  # fmt: skip
                batch_starts = dict(starts)
                for row in totals[1:]:
                    if row.time is not None:
                        known = batch_starts.get(row.rule)
                        batch_starts[row.rule] = min(known, row.time) if known else row.time
                rows = session.sql(batch_sql(good, batch, batch_starts, summary))
                rows.coalesce(session.sparkContext.defaultParallelism).write.parquet(
                    folder.child(partial)
                )
                break
            except PySparkException:
                if attempt == 2:
                    raise
                errors = _failing_rules(session, good)
                if not errors:
                    raise
                good = [rule for rule in good if rule.name not in errors]
                if strict:
                    raise TsaError(
                        "rule failed (--strict): "
                        + "; ".join(f"{n} ({e})" for n, e in errors.items())
                    ) from None
    finally:
        events.unpersist()
        session.catalog.dropTempView("cloudtrail")
    stored = {rule: moment.isoformat(sep=" ") for rule, moment in batch_starts.items()}
    folder.write_text(f"{partial}/{STARTS_FILE}", json.dumps(sorted(stored.items())))
    folder.rename(partial, final)
    return True


def _failing_rules(session: SparkSession, rules: list[Rule]) -> dict[str, str]:
    """Each rule run alone over the batch: those that fail, with file and reason."""
    from pyspark.errors import PySparkException

    failing = {}
    for rule in rules:
        try:
            session.sql(rule.sql).write.format("noop").mode("overwrite").save()
        except PySparkException as exc:
            failing[rule.name] = f"{rule.path}: {first_line(exc)}"
    return failing


# --- the apply query --------------------------------------------------------------------------


def make_step(rules: list[Rule], strict: bool = False):  # type: ignore[no-untyped-def]
    """The function ``applyInPandasWithState`` calls for each (rule, key) of a batch."""
    import pandas as pd

    by_name = {rule.name: rule for rule in rules}

    def step(key: tuple[str, str], frames: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # type: ignore[no-untyped-def]
        # pyspark's worker concatenates the frames yielded here, some with all-NA columns;
        # pandas 2.x warns about that on every batch (harmless; the types are set by the schema)
        warnings.filterwarnings("ignore", "The behavior of DataFrame concatenation", FutureWarning)
        frame = pd.concat(list(frames))
        if key[0] == STATUS_RULE:
            out = [("status", STATUS_RULE, None, None, None, None, None, None, None, raw,
                    None, None, None, int(batch))
                   for raw, batch in zip(frame["row"], frame["batch"], strict=True)]  # fmt: skip
            yield pd.DataFrame(out, columns=STEP_COLUMNS)
            return
        rule = by_name.get(key[0])
        if rule is None:  # rows of a rule since removed from the rule set
            return
        frame = frame.sort_values(["eventTime", "eventID"], kind="stable")
        store = pickle.loads(base64.b64decode(state.get[0])) if state.exists else {}
        try:
            out = _apply(rule, frame, store)
        except Exception as exc:  # one rule's bug must not stop the others
            if strict:
                raise
            message = f"{rule.path}: {type(exc).__name__}: {exc}"
            yield pd.DataFrame(
                [("error", rule.name, None, None, None, None, None, None, None, message,
                  None, None, None, int(frame["batch"].max()))],
                columns=STEP_COLUMNS,
            )  # fmt: skip
            return
        state.update((base64.b64encode(pickle.dumps(store)).decode("ascii"),))
        if out:  # nothing to yield is fine, and spares pandas an empty concat
            yield pd.DataFrame(out, columns=STEP_COLUMNS)

    return step


def _apply(rule: Rule, frame: pd.DataFrame, store: dict) -> list[tuple]:  # type: ignore[type-arg]
    rows = []
    for raw, moment, event_id, start, last, count, batch in zip(
        frame["row"], frame["eventTime"], frame["eventID"], frame["start"], frame["last"],
        frame["count"], frame["batch"], strict=True,
    ):  # fmt: skip
        row = json.loads(raw)
        row.update(eventTime=moment.to_pydatetime(), eventID=event_id, __batch=int(batch))
        if start is not None and start == start:  # not NaT
            row[START] = start.to_pydatetime()
        if last is not None and last == last:
            row[LAST], row[COUNT] = last.to_pydatetime(), int(count)
        rows.append(row)
    alerts = apply_rule(rule, rows, store)
    account_wide = _account_wide(rule)
    entity_column = rule.values.get("entity")
    out = _state_rows(rule, rows, store) if rule.kind == "profile" and rows else []
    for row, value, details in alerts:
        event = {k: v for k, v in row.items() if not k.startswith("__") and k != "eventTime"}
        event["eventTime"] = row["eventTime"].isoformat()
        if rule.kind == "profile":
            details = dict(details or {})
            if account_wide:  # its state is per value: what else the profile holds is in
                details.pop("values_before", None)  # security.profile_state
                details.pop("recent_values", None)
            body: dict[str, Any] = {"event": event, **details}
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
                row["__batch"],
            )
        )
    return out


def _state_rows(rule: Rule, rows: list[dict[str, Any]], store: dict) -> list[tuple]:  # type: ignore[type-arg]
    """The profile entries this batch touched (their new first/last/count) and those it
    forgot (count 0), after compacting entries older than ``expire``."""
    entity_column = rule.values.get("entity")
    latest = max(row.get(LAST) or row["eventTime"] for row in rows)
    batch = rows[-1]["__batch"]
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
            out.append(_state_row(rule, entity, value, None, batch))
        for touched_entity, value in touched:
            if touched_entity == entity and value in item.values:
                out.append(_state_row(rule, entity, value, item.values[value], batch))
    return out


def _state_row(rule: Rule, entity: str, value: str, seen: Any, batch: int) -> tuple:  # type: ignore[type-arg]
    return (
        "state", rule.name, None if _account_wide(rule) else entity, value,
        None, None, None, None, None, None,
        seen.first if seen else None, seen.last if seen else None, seen.count if seen else 0,
        batch,
    )  # fmt: skip


@dataclass
class BatchStatus:
    """One line per batch of events: what came in, what it raised, how far behind."""

    batch: int
    events: int = 0
    files: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    added: int = 0
    started: dt.datetime | None = None
    newest_event: dt.datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        """The time is from the batch's start to its alerts written; the lag, how far the
        newest event read is behind now."""
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(self.alerts.items())) or "none"
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        seconds = (now - self.started).total_seconds() if self.started else 0.0
        lag = ""
        if self.newest_event is not None:
            lag = f", lag {(now - self.newest_event).total_seconds():,.0f} s"
        line = (
            f"batch {self.batch}: events {self.events:,}, files {self.files:,}, "
            f"alerts {sum(self.alerts.values())} ({rules}), new {self.added}, "
            f"{seconds:.1f} s{lag}"
        )
        for rule, error in sorted(self.errors.items()):
            line += f"\n  rule {rule} FAILED, left out of this batch: {error}"
        return line


def _alert_rows_sql(rules: list[Rule], view: str) -> str:
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
  details, batch AS batch_id, current_timestamp() AS created_at
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


def create_run_tables(spark: SparkSession, database: str) -> str:
    """The database, ``alerts``, ``profile_state_log`` and ``profile_state``; the checked name."""
    database = check_identifier(database)
    run_statements(
        spark,
        [
            create_database(database),
            create_alerts_table(database),
            create_deliveries_table(database),
            *profile_state_ddl(database),
        ],
    )
    return database


def _write_state(session: SparkSession, rows: DataFrame, db: str, batch_id: int) -> None:
    """Append the batch's profile entries that the log does not hold yet: a replayed batch
    (even one killed while its files were being committed) completes what is missing."""
    table = f"{db}.{STATE_LOG}"
    session.catalog.refreshTable(table)
    entries = rows.selectExpr(
        "rule", "entity", "value", "first_seen", "last_seen", "seen_count",
        f"CAST({int(batch_id)} AS BIGINT) AS batch_id",
    )  # fmt: skip
    logged = session.table(table).where(f"batch_id = {int(batch_id)}")
    same = [entries[c].eqNullSafe(logged[c]) for c in ("rule", "entity", "value")]
    new = entries.join(logged.select("rule", "entity", "value"), same, "left_anti")
    new.selectExpr("*", "current_timestamp() AS updated_at").write.insertInto(table)


# --- both together ----------------------------------------------------------------------------


class Runner:
    """The two queries. With ``--once`` the apply query starts when observe has read all."""

    def __init__(self, observe: StreamingQuery, start_apply: Callable[[], StreamingQuery],
                 once: bool, delivery: DeliveryLoop | None = None,
                 observed: Callable[[StreamingQuery], None] | None = None) -> None:  # fmt: skip
        self.observe = observe
        self._observed = observed  # called once the observe query has ended
        self._start_apply = start_apply
        self.delivery = delivery.start() if delivery else None
        self.apply = None if once else start_apply()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        for query in (self.observe, self.apply):
            if query is not None:
                query.stop()

    def wait(self) -> int:
        """Until both queries end (``--once``: when all is processed); 1 if one failed."""
        from pyspark.errors import StreamingQueryException

        try:
            self.observe.awaitTermination()
            if self._observed is not None:
                self._observed(self.observe)
            if self.apply is None and not self.stopped:
                self.apply = self._start_apply()
            if self.apply is not None:
                self.apply.awaitTermination()
        except StreamingQueryException as exc:
            # our own error raised in a batch arrives wrapped in Spark's and py4j's
            ours = re.search(r"TsaError: ([^\n]+)", str(exc))
            print(f"run failed: {ours.group(1) if ours else first_line(exc)}", flush=True)
            self.stop()
            return 1
        finally:
            if self.delivery is not None:  # a last round; what stays pending waits in the outbox
                self.delivery.stop()
        return 0


def _clean_checkpoint(spark: SparkSession, checkpoint: str, report: Callable[[str], None]) -> None:
    for path in remove_unfinished_writes(spark, checkpoint):
        report(f"checkpoint: removed {checkpoint}/{path}, a write a stopped runner left unfinished")


def start(
    spark: SparkSession,
    events: DataFrame,
    rules: list[Rule],
    database: str,
    checkpoint: str,
    trigger: float | None,
    once: bool,
    report: Callable[[str], None] = print,
    strict: bool = False,
    deliverer: Deliverer | None = None,
    delivery_interval: float = 2.0,
    observed: Callable[[StreamingQuery], None] | None = None,
) -> Runner:
    """Start the runner's streaming queries over ``events``; ``Runner.wait()`` waits for them.
    With a ``deliverer``, new alerts also go to its sinks (:class:`DeliveryLoop`); ``observed``
    is called with the observe query once it has ended."""
    database = create_run_tables(spark, database)
    delivery = None
    if deliverer is not None:
        delivery = DeliveryLoop(spark, database, deliverer, report, delivery_interval)
    root = Folder(spark, checkpoint)
    observations = Folder(spark, root.child(OBSERVATIONS))
    observations.make()  # the apply query's source must exist before the first batch

    used = columns_used(rules)

    def observe(batch: DataFrame, batch_id: int) -> None:
        observe_batch(batch, batch_id, rules, observations, strict, used)

    _clean_checkpoint(spark, root.child(OBSERVE), report)
    writer = events.writeStream.foreachBatch(observe).queryName("tsa-observe")
    writer = writer.option("checkpointLocation", root.child(OBSERVE))
    if once:
        writer = writer.trigger(availableNow=True)
    elif trigger:
        writer = writer.trigger(processingTime=f"{int(trigger)} seconds")
    observe_query = writer.start()
    on_alerts = delivery.kick if delivery else None
    return Runner(
        observe_query,
        lambda: start_apply(spark, rules, database, checkpoint, once, report, strict, on_alerts),
        once,
        delivery,
        observed,
    )


def start_apply(
    spark: SparkSession,
    rules: list[Rule],
    database: str,
    checkpoint: str,
    once: bool,
    report: Callable[[str], None] = print,
    strict: bool = False,
    on_alerts: Callable[[], None] | None = None,
) -> StreamingQuery:
    """The apply query over what the observe query wrote under ``checkpoint``; ``on_alerts``
    is called after a batch added alerts."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    root = Folder(spark, checkpoint)
    observations = Folder(spark, root.child(OBSERVATIONS))
    rows = (
        spark.readStream.schema(OBSERVATION_SCHEMA)
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "*.parquet")
        .parquet(observations.path)
    )
    step_rows = rows.groupBy("rule", "key").applyInPandasWithState(
        make_step(rules, strict), STEP_SCHEMA, STATE_SCHEMA, "append", GroupStateTimeout.NoTimeout
    )
    # The state's partitions are fixed when the checkpoint is created: Spark's default of 200
    # would make every batch, however small, open and commit 200 state stores.
    partitions = spark.conf.get(STATE_PARTITIONS_CONF, None) or str(
        STATE_PARTITIONS_PER_CORE * spark.sparkContext.defaultParallelism
    )
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", partitions)

    def apply(batch: DataFrame, batch_id: int) -> None:
        session = batch.sparkSession
        batch = batch.localCheckpoint()
        statuses: dict[int, BatchStatus] = {}
        # one small job: state rows counted, the few others (alerts, status, errors) read
        columns = (
            "record", "rule", "batch",
            "CASE WHEN record IN ('status', 'error') THEN details END AS details",
        )  # fmt: skip
        state_rows = 0
        counted = batch.selectExpr(*columns).groupBy("record", "rule", "batch", "details")
        for row in counted.count().collect():
            if row.record == "state":
                state_rows += row["count"]
                continue
            status = statuses.setdefault(row.batch, BatchStatus(row.batch))
            if row.record == "alert":
                status.alerts[row.rule] += row["count"]
            elif row.record == "error":
                status.errors[row.rule] = row.details
            else:
                summary = json.loads(row.details)
                status.events, status.files = summary["events"], summary["files"]
                status.started = dt.datetime.fromisoformat(summary["started"])
                status.errors.update(summary["errors"])
                if summary["newest"]:
                    status.newest_event = dt.datetime.fromisoformat(summary["newest"])
        if state_rows:
            _write_state(session, batch.where("record = 'state'"), database, batch_id)
        added = 0
        if any(status.alerts for status in statuses.values()):
            view = "__run_alerts"
            batch.where("record = 'alert'").createOrReplaceTempView(view)
            alerts = session.sql(_alert_rows_sql(rules, view))
            added = append_new_alerts(session, alerts, database)
            if added and on_alerts is not None:
                on_alerts()
        for number, status in sorted(statuses.items()):
            status.added = added if number == max(statuses) else 0
            report(status.render())

    _clean_checkpoint(spark, root.child(APPLY), report)
    writer = step_rows.writeStream.foreachBatch(apply).queryName("tsa-apply")
    writer = writer.option("checkpointLocation", root.child(APPLY))
    if once:
        writer = writer.trigger(availableNow=True)
    else:  # its source is local and small: look often, so alerts follow their events closely
        writer = writer.trigger(processingTime="1 second")
    try:
        return writer.start()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)
