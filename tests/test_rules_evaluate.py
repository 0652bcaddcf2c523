"""Semantics of rules on small literal events, through the engine as `detect` runs it:
profiles learn, alert on new values, forget after `expire`; thresholds count within a window;
dedup keeps one alert per key. Fused and alone (`--no-fuse`), the alerts are the same."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from loader.engine.evaluate import cache_events, evaluate
from loader.engine.plan import plan_rules
from loader.rules.model import read_rule

pytestmark = pytest.mark.spark
T0 = dt.datetime(2024, 1, 1, 8, 0, 0)


def _events(spark, rows):
    """(minutes after T0, actor, ip, country, eventName, errorCode) -> a `cloudtrail` view."""
    data = [
        (f"e{i:03d}", T0 + dt.timedelta(minutes=m), actor, ip, country, name, error,
         "111122223333", "us-east-1")
        for i, (m, actor, ip, country, name, error) in enumerate(rows)
    ]  # fmt: skip
    schema = (
        "eventID string, eventTime timestamp, actor string, sourceIPAddress string, "
        "country string, eventName string, errorCode string, recipientAccountId string, "
        "awsRegion string"
    )
    session = spark.newSession()
    session.createDataFrame(data, schema).createOrReplaceTempView("events")
    return session


def rule_alerts(session, rule):
    """The rule's alerts over the session's events, fused; the same as alone (no-fuse)."""
    events, _ = cache_events(session.table("events"), None)
    try:
        fused, alone = (
            evaluate(plan_rules([rule], fuse), events).alerts.collect() for fuse in (True, False)
        )
    finally:
        events.unpersist()

    def comparable(alerts):
        rows = [{k: v for k, v in a.asDict().items() if k != "created_at"} for a in alerts]
        return sorted(rows, key=lambda row: row["alert_id"])

    assert comparable(fused) == comparable(alone)
    return fused


def _rule(tmp_path, name, header, query):
    path = tmp_path / f"{name}.sql"
    path.write_text(f"/*\nname: {name}\ndescription: test\nseverity: high\n{header}*/\n{query}")
    rule, problems = read_rule(path)
    assert problems == []
    return rule


DAY = 24 * 60


def test_profile_learns_alerts_on_new_values_and_forgets_after_expire(spark, tmp_path):
    session = _events(
        spark,
        [
            (0, "alice", "1.1.1.1", "US", "A", None),
            (DAY, "alice", "1.1.1.1", "GB", "A", None),  # new, but alice is still learning
            (3 * DAY, "alice", "1.1.1.1", "US", "A", None),  # known
            (5 * DAY, "alice", "1.1.1.1", "CN", "A", None),  # new after learning: alert
            (5 * DAY + 1, "alice", "1.1.1.1", "CN", "A", None),  # known now
            (5 * DAY, "bob", "2.2.2.2", "SE", "A", None),  # bob's first day: learning
            (5 * DAY + 5, "bob", "2.2.2.2", "NO", "A", None),  # still learning
            (40 * DAY, "alice", "1.1.1.1", "GB", "A", None),  # GB unseen for 39 days: expired
            (41 * DAY, "carol", "3.3.3.3", None, "A", None),  # no value: not an observation
        ],
    )
    rule = _rule(
        tmp_path,
        "new_country_for_actor",
        "kind: profile\nentity: actor\nvalue: country\nlearning: 2 days\nexpire: 30 days\n",
        "SELECT actor, country, eventID, eventTime, sourceIPAddress, recipientAccountId, "
        "awsRegion FROM cloudtrail",
    )
    alerts = sorted(rule_alerts(session, rule), key=lambda a: a.event_time)
    assert [(a.entity, a.value, a.event_id) for a in alerts] == [
        ("alice", "CN", "e003"),
        ("alice", "GB", "e007"),
    ]
    first, second = alerts
    assert (first.kind, first.severity, first.account, first.region, first.source_ip) == (
        "profile", "high", "111122223333", "us-east-1", "1.1.1.1",
    )  # fmt: skip
    details = json.loads(first.details)
    assert details["first_time_seen"] is True and details["values_before"] == 2
    assert details["recent_values"] == ["GB", "US"]
    assert json.loads(second.details)["first_time_seen"] is False  # seen before, but expired
    again = sorted(a.alert_id for a in rule_alerts(session, rule))
    assert again == sorted(a.alert_id for a in alerts)  # deterministic ids


def test_account_wide_profile_learns_from_the_first_observation(spark, tmp_path):
    session = _events(
        spark,
        [
            (0, "alice", "1.1.1.1", "US", "A", None),
            (DAY, "bob", "2.2.2.2", "US", "A", None),
            (3 * DAY, "carol", "3.3.3.3", "US", "A", None),  # a new IP after learning: alert
            (3 * DAY + 1, "alice", "1.1.1.1", "US", "A", None),
        ],
    )
    rule = _rule(
        tmp_path,
        "new_source_ip",
        "kind: profile\nvalue: ip\nlearning: 2 days\n",
        "SELECT sourceIPAddress AS ip, eventID, eventTime FROM cloudtrail",
    )
    alerts = rule_alerts(session, rule)
    assert [(a.entity, a.value, a.event_id) for a in alerts] == [(None, "3.3.3.3", "e002")]


def test_threshold_counts_within_the_window_and_alerts_once(spark, tmp_path):
    denied = [(m, "mallory", "6.6.6.6", "RU", "ListUsers", "AccessDenied") for m in (0, 2, 4, 6)]
    slow = [(m, "trent", "7.7.7.7", "US", "ListUsers", "AccessDenied") for m in (0, 20, 40)]
    session = _events(spark, denied + slow + [(90, "mallory", "6.6.6.6", "RU", "X", None)])
    rule = _rule(
        tmp_path,
        "unauthorized_api_calls_burst",
        "kind: alert\nentity: actor\nthreshold: 3\nwindow: 10m\n",
        "SELECT actor, eventID, eventTime FROM cloudtrail WHERE errorCode = 'AccessDenied'",
    )
    alerts = rule_alerts(session, rule)
    assert [(a.entity, a.event_id) for a in alerts] == [("mallory", "e002")]
    assert json.loads(alerts[0].details)["events_in_window"] == 3


def test_dedup_keeps_one_alert_per_entity_within_the_window(spark, tmp_path):
    tor = [(m, "dave", f"171.25.193.{m}", "SE", "GetCallerIdentity", None) for m in (0, 10, 50)]
    later = [(200, "dave", "171.25.193.99", "SE", "ListBuckets", None)]
    other = [(5, "erin", "185.220.101.1", "DE", "ListBuckets", None)]
    session = _events(spark, tor + later + other)
    rule = _rule(
        tmp_path,
        "tor_exit_node_activity",
        "kind: alert\nentity: actor\ndedup: 1 hour\n",
        "SELECT actor, eventID, eventTime, sourceIPAddress FROM cloudtrail",
    )
    alerts = sorted(rule_alerts(session, rule), key=lambda a: a.event_id)
    assert [(a.entity, a.event_id) for a in alerts] == [
        ("dave", "e000"), ("dave", "e003"), ("erin", "e004"),
    ]  # fmt: skip
