"""What the alert report shows, read from the tables into plain Python (then rendered without
Spark by :mod:`loader.report.render`).

Read: ``alerts`` in the period; the latest delivery status per alert and sink
(``alert_deliveries``); for the entities with the most alerts, their events per hour around
their alerts and how many of those failed (``errorCode``), from the events table; what their
profiles hold (``profile_state``, written by `run`); and the raw JSON of each alert's event.
Every table but ``alerts`` is optional: what is missing is said in the report.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loader.alerts.model import ALERTS_TABLE
from loader.alerts.outbox import DELIVERIES_TABLE
from loader.errors import TsaError
from loader.sql import check_identifier, sql_string
from loader.tables.cloudtrail_schema import derived_sql

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TEXT_TIME = "yyyy-MM-dd HH:mm:ss"
PRINCIPAL = derived_sql("principal")  # --table may name a table that stores no principal
AROUND = dt.timedelta(hours=24)  # an entity's timeline: this much before and after its alerts
RAW_LIMIT = 20_000  # characters of an event's raw JSON shown


@dataclass
class Alert:
    alert_id: str
    rule: str
    kind: str
    severity: str
    event_id: str | None
    event_time: dt.datetime | None
    entity: str | None
    value: str | None
    account: str | None
    region: str | None
    source_ip: str | None
    title: str | None
    details: dict[str, Any]
    deliveries: dict[str, str] = field(default_factory=dict)  # sink -> latest status
    raw_event: str | None = None


@dataclass
class EntityView:
    entity: str
    alerts: list[Alert]
    hours: list[tuple[dt.datetime, int, int]] = field(default_factory=list)  # hour, events, errors
    profile: list[dict[str, Any]] = field(default_factory=list)  # profile_state rows


@dataclass
class ReportData:
    database: str
    since: str | None
    until: str | None
    generated: dt.datetime
    alerts: list[Alert]
    entities: list[EntityView]
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
    blind: list[str] = field(default_factory=list)  # where enrichment could not answer


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _where(since: str | None, until: str | None, column: str) -> str:
    parts = ["true"]
    if since:
        parts.append(f"{column} >= timestamp {sql_string(since)}")
    if until:
        parts.append(f"{column} < timestamp {sql_string(until)}")
    return " AND ".join(parts)


def _alerts(spark: SparkSession, db: str, since: str | None, until: str | None) -> list[Alert]:
    """The alerts of the period, in event time order."""
    spark.catalog.refreshTable(f"{db}.{ALERTS_TABLE}")
    rows = spark.sql(
        f"SELECT alert_id, rule, kind, severity, event_id, "
        f"date_format(event_time, '{TEXT_TIME}') AS t, entity, value, account, region, "
        f"source_ip, title, details FROM {db}.{ALERTS_TABLE} "
        f"WHERE {_where(since, until, 'event_time')} ORDER BY event_time, rule, alert_id"
    ).collect()
    return [
        Alert(
            r.alert_id,
            r.rule,
            r.kind,
            r.severity,
            r.event_id,
            _time(r.t),
            r.entity,
            r.value,
            r.account,
            r.region,
            r.source_ip,
            r.title,
            _details(r.details),
        )  # fmt: skip
        for r in rows
    ]


def read_report_data(
    spark: SparkSession,
    database: str,
    since: str | None = None,
    until: str | None = None,
    table: str | None = None,
    entities: int = 20,
    enrichment: Any = None,
) -> ReportData:
    """Everything the report shows: the period's alerts, the entities with most of them (each
    with its activity, raw events and profile), deliveries, and enrichment blind spots."""
    db = check_identifier(database)
    if not spark.catalog.tableExists(f"{db}.{ALERTS_TABLE}"):
        raise TsaError(
            f"no table {db}.{ALERTS_TABLE} here: run `python -m loader detect` (or `run`) first; "
            "the report shows their alerts"
        )
    alerts = _alerts(spark, db, since, until)
    data = ReportData(db, since, until, dt.datetime.now(dt.timezone.utc), alerts, [])
    _deliveries(spark, db, alerts, data.notes)
    counts: dict[str, int] = {}
    for alert in alerts:
        if alert.entity:
            counts[alert.entity] = counts.get(alert.entity, 0) + 1
    chosen = sorted(counts, key=lambda e: (-counts[e], e))[:entities]
    if len(counts) > entities:
        data.notes.append(
            f"{len(counts) - entities} more entities with alerts are not shown (--entities)"
        )
    data.entities = [EntityView(e, [a for a in alerts if a.entity == e]) for e in chosen]
    events = table or f"{db}.cloudtrail"
    if data.entities and spark.catalog.tableExists(events):
        _timelines(spark, events, data.entities)
        _raw_events(spark, events, [a for view in data.entities for a in view.alerts])
    elif data.entities:
        data.notes.append(f"no table {events}: no activity timelines or raw events")
    _profiles(spark, db, data.entities, data.notes)
    if enrichment is not None and spark.catalog.tableExists(events):
        from loader.coverage.enrichment import blind_spots

        period = spark.table(events).where(_where(since, until, "eventTime"))
        data.blind = blind_spots(period.select("eventTime", "sourceIPAddress"), enrichment)
    return data


def _details(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"details": text}
    return value if isinstance(value, dict) else {"details": value}


def _deliveries(spark: SparkSession, db: str, alerts: list[Alert], notes: list[str]) -> None:
    table = f"{db}.{DELIVERIES_TABLE}"
    if not spark.catalog.tableExists(table):
        notes.append(f"no table {table}: delivery status unknown")
        return
    spark.catalog.refreshTable(table)
    rows = spark.sql(
        "SELECT alert_id, sink, status FROM (SELECT *, row_number() OVER (PARTITION BY "
        "alert_id, sink ORDER BY attempted_at DESC, attempt DESC) AS n "
        f"FROM {table}) WHERE n = 1"
    ).collect()
    by_id = {a.alert_id: a for a in alerts}
    for row in rows:
        if row.alert_id in by_id:
            by_id[row.alert_id].deliveries[row.sink] = row.status


def _timelines(spark: SparkSession, events: str, views: list[EntityView]) -> None:
    """Events and errors per hour of each entity (as principal or source address) around its
    alerts: one query for all of them."""
    spans = []
    for view in views:
        times = [a.event_time for a in view.alerts if a.event_time]
        if times:
            spans.append((view.entity, min(times) - AROUND, max(times) + AROUND))
    if not spans:
        return
    lo = min(s[1] for s in spans)
    hi = max(s[2] for s in spans)
    values = ", ".join(
        f"({sql_string(e)}, timestamp {sql_string(str(a))}, timestamp {sql_string(str(b))})"
        for e, a, b in spans
    )
    rows = spark.sql(f"""
WITH wanted AS (SELECT * FROM VALUES {values} AS w(entity, lo, hi)),
ev AS (
  SELECT eventTime, errorCode, {PRINCIPAL} AS principal, sourceIPAddress AS ip
  FROM {events}
  WHERE dt >= {sql_string(lo.date().isoformat())} AND dt <= {sql_string(hi.date().isoformat())}
    AND eventTime >= timestamp {sql_string(str(lo))} AND eventTime < timestamp {sql_string(str(hi))}
)
SELECT w.entity, date_format(date_trunc('HOUR', ev.eventTime), '{TEXT_TIME}') AS hour,
       count(*) AS events, count(ev.errorCode) AS errors
FROM ev JOIN wanted w
  ON (ev.principal = w.entity OR ev.ip = w.entity) AND ev.eventTime >= w.lo AND ev.eventTime < w.hi
GROUP BY 1, 2 ORDER BY 1, 2""").collect()  # noqa: E501
    by_entity = {v.entity: v for v in views}
    for row in rows:
        hour = _time(row.hour)
        if hour is not None:
            by_entity[row.entity].hours.append((hour, row.events, row.errors))


def _raw_events(spark: SparkSession, events: str, alerts: list[Alert]) -> None:
    wanted = [a for a in alerts if a.event_id and a.event_time]
    if not wanted or "raw_json" not in {c.lower() for c in spark.table(events).columns}:
        return
    days = sorted({a.event_time.date().isoformat() for a in wanted if a.event_time})
    ids = ", ".join(sql_string(a.event_id) for a in wanted if a.event_id)
    rows = spark.sql(
        f"SELECT eventID, raw_json FROM {events} WHERE dt IN "
        f"({', '.join(sql_string(d) for d in days)}) AND eventID IN ({ids})"
    ).collect()
    raw = {r.eventID: r.raw_json for r in rows}
    for alert in wanted:
        text = raw.get(alert.event_id)
        if text is not None:
            try:
                text = json.dumps(json.loads(text), indent=2, sort_keys=True)
            except ValueError:
                pass
            alert.raw_event = text[:RAW_LIMIT]


def _profiles(spark: SparkSession, db: str, views: list[EntityView], notes: list[str]) -> None:
    profiled = [v for v in views if any(a.kind == "profile" for a in v.alerts)]
    if not profiled:
        return
    table = f"{db}.profile_state"
    if not spark.catalog.tableExists(table):
        notes.append(
            f"no view {table} (written by `run`): profiles shown from each alert's details"
        )
        return
    names = ", ".join(sql_string(v.entity) for v in profiled)
    rules = ", ".join(sorted({sql_string(a.rule) for v in profiled for a in v.alerts}))
    rows = spark.sql(
        f"SELECT rule, entity, value, date_format(first_seen, '{TEXT_TIME}') AS first_seen, "
        f"date_format(last_seen, '{TEXT_TIME}') AS last_seen, seen_count FROM {table} "
        f"WHERE entity IN ({names}) AND rule IN ({rules}) ORDER BY rule, first_seen"
    ).collect()
    by_entity = {v.entity: v for v in profiled}
    for row in rows:
        by_entity[row.entity].profile.append(row.asDict())
