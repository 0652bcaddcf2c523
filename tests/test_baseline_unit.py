"""Baseline rules without a JVM: the robust z-score, a month of history judged in one batch and
batch by batch (with restarts and clock-only calls, as Spark's timeouts make them), learning,
trends, late rows, forgetting, and what `validate` says about the new header keys."""

from __future__ import annotations

import datetime as dt
import math
import pickle
import statistics
from collections import Counter

import pytest

from loader.engine.records import Observation
from loader.engine.state import BaselineSettings, robust_stats
from loader.engine.step import apply_rule
from loader.rules.model import read_rule
from loader.rules.validate import SQL, validate_rule
from tests.baseline_history import SPIKE, SPIKE_DAY, SPIKE_HOUR, arn, history_events

RULE_PATH = SQL / "baselines" / "access_denied_spike.sql"


def _rule(**changes):
    rule, problems = read_rule(RULE_PATH)
    assert problems == []
    for key, value in changes.items():
        setattr(rule, key, value)
    return rule


def _time(event) -> dt.datetime:
    return dt.datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ")


def _api(event) -> str:
    return f"{event['eventSource'].split('.')[0]}:{event['eventName']}"


def observations(events, rule, batch: int = 0) -> list[Observation]:
    """The engine's reduction, in Python: one observation per entity, top value and bucket
    (first time, last time, rows), each carrying the clock (the newest event of ``events``)."""
    settings = BaselineSettings.of(rule)
    groups: dict[tuple, list[dt.datetime]] = {}
    for e in events:
        key = (e["userIdentity"]["arn"], _api(e), settings.number(_time(e)))
        groups.setdefault(key, []).append(_time(e))
    clock = max(_time(e) for e in events)
    out = [
        Observation(entity, api, min(times), None, None, last=max(times), count=len(times),
                    batch=batch, clock=clock)
        for (entity, api, _), times in groups.items()
    ]  # fmt: skip
    return sorted(out, key=lambda o: (o.time, o.entity, o.value))


def judge_all(rule, chunks, restart: bool = False):
    """Alerts and judgements of ``chunks`` of observations given one after the other, each key
    with its own store (as Spark's state store keeps them), the store pickled between chunks
    when ``restart``; after each chunk, every key is called with the clock alone (a timeout)."""
    stores: dict[str, dict] = {}
    alerts, judged = [], []
    for chunk in chunks:
        by_entity: dict[str, list[Observation]] = {}
        for seen in chunk:
            by_entity.setdefault(seen.entity, []).append(seen)
        clock = max(seen.clock for seen in chunk)
        for entity in sorted(set(stores) | set(by_entity)):
            store = stores.setdefault(entity, {})
            alerts += apply_rule(rule, by_entity.get(entity, []), store, clock, judged)
            if restart:
                stores[entity] = pickle.loads(pickle.dumps(store))
    return alerts, judged


@pytest.fixture(scope="module")
def month():
    return history_events()


def test_robust_stats_are_the_documented_formula():
    history = [0] * 5 + [3, 4, 4, 5, 5, 5, 6, 7, 9, 30] + [0] * 5
    median, mad, p95, maximum, spread = robust_stats(history)
    assert median == statistics.median(history) == 1.5
    assert mad == statistics.median(abs(x - 1.5) for x in history) == 1.5
    assert p95 == sorted(history)[math.ceil(0.95 * len(history)) - 1] == 9  # nearest rank
    assert maximum == 30
    # half the hours idle: the p95 term sets the spread, not the MAD
    assert spread == pytest.approx((9 - 1.5) / 1.645)
    assert spread > max(1.4826 * 1.5, math.sqrt(1.5), 1)
    # a perfectly steady entity: the MAD is 0, the spread is the Poisson term
    assert robust_stats([100] * 50)[4] == pytest.approx(10.0)
    assert robust_stats([0] * 50)[4] == 1.0  # idle: at least 1


def test_a_month_judged_in_one_batch_alerts_only_the_spike_with_its_baseline(month):
    rule = _rule()
    alerts, judged = judge_all(rule, [observations(month, rule)])
    assert len(alerts) == 1
    seen, details, _ = alerts[0]
    spike = dt.datetime.combine(SPIKE_DAY, dt.time(SPIKE_HOUR))
    assert (seen.entity, seen.time, seen.value) == (arn("steady-app"), spike, str(spike))
    # the baseline, computed here independently: the hours before, empty ones as 0
    counts = Counter(
        _time(e).replace(minute=0, second=0) for e in month
        if e["userIdentity"]["arn"] == arn("steady-app")
    )  # fmt: skip
    first = min(counts)
    hours = [
        first + dt.timedelta(hours=h) for h in range(int((spike - first).total_seconds() // 3600))
    ]
    history = [counts.get(h, 0) for h in hours]
    assert details["count"] == counts[spike] >= SPIKE
    assert details["baseline"]["buckets"] == len(history)
    assert details["baseline"]["median"] == statistics.median(history)
    assert details["baseline"]["max"] == max(history)
    assert details["baseline"]["p95"] == sorted(history)[math.ceil(0.95 * len(history)) - 1]
    spread = details["baseline"]["spread"]
    assert details["deviation"] == pytest.approx(
        (counts[spike] - statistics.median(history)) / spread, abs=0.01
    )
    apis = Counter(_api(e) for e in month if e["userIdentity"]["arn"] == arn("steady-app")
                   and _time(e).replace(minute=0, second=0) == spike)  # fmt: skip
    top = details["top"]["values"]
    assert [(t["value"], t["count"]) for t in top] == sorted(
        apis.items(), key=lambda kv: (-kv[1], kv[0])
    )[:5]
    assert details["summary"].startswith(
        f"{counts[spike]} rows in 1 hour from 2024-03-28 14:00 UTC; usual 4 (p95 "
    )
    # every entity judged; the steady days, the young entity's burst, the 3%-a-day trend: quiet
    by_entity = Counter(entity for entity, _ in judged)
    assert set(by_entity) == {
        arn(n) for n in ("steady-app", "office-worker", "growing-role", "new-hire")
    }
    burst = [j for entity, j in judged if entity == arn("new-hire") and j.count >= 80]
    assert burst and all(j.learning and not j.alert for j in burst)  # two days old: learning
    growing = [j for entity, j in judged if entity == arn("growing-role")]
    assert max(j.count for j in growing) >= 20  # above min_count late in the month
    assert (
        not any(j.alert for j in growing)
        and max(j.score for j in growing if j.score is not None) < 5
    )


def test_batch_by_batch_with_restarts_equals_one_batch(month):
    rule = _rule()
    whole, judged_whole = judge_all(rule, [observations(month, rule)])
    # 6-hour batches, as files land; every key also called with the clock alone
    batches: dict[dt.datetime, list] = {}
    for e in month:
        t = _time(e)
        batches.setdefault(t.replace(hour=t.hour - t.hour % 6, minute=0, second=0), []).append(e)
    chunks = []
    newest = None
    for n, (_, events) in enumerate(sorted(batches.items())):
        chunk = observations(events, rule, n)
        newest = max(filter(None, (newest, chunk[0].clock)))
        for seen in chunk:
            seen.clock = newest
        chunks.append(chunk)
    parts, judged_parts = judge_all(rule, chunks, restart=True)
    assert [(s.entity, s.value, d) for s, d, _ in parts] == [
        (s.entity, s.value, d) for s, d, _ in whole
    ]
    assert sorted((e, j.bucket, j.count) for e, j in judged_parts) == sorted(
        (e, j.bucket, j.count) for e, j in judged_whole
    )


def test_a_bucket_waits_for_lateness_and_a_late_row_is_not_judged_twice():
    rule = _rule(min_history=0.0, min_count=5)
    settings = BaselineSettings.of(rule)
    t = dt.datetime(2024, 3, 1, 10, 0)
    rows = [
        Observation("u", "x", t + dt.timedelta(hours=h), None, None, count=2, clock=t)
        for h in range(10)
    ]
    store: dict = {}
    judged: list = []
    apply_rule(rule, rows, store, t + dt.timedelta(hours=9, minutes=20), judged)
    # 18:00-19:00 closes at 19:30: judged up to 17:00
    assert [j.bucket for _, j in judged] == [settings.number(t) + h for h in range(8)]
    spike = Observation("u", "x", t + dt.timedelta(hours=10, minutes=5), None, None, count=50)
    alerts = apply_rule(rule, [spike], store, t + dt.timedelta(hours=11, minutes=29), judged)
    assert alerts == []  # 20:00-21:00 closes only 30 minutes after 21:00
    alerts = apply_rule(rule, [], store, t + dt.timedelta(hours=11, minutes=31), judged)
    assert len(alerts) == 1 and alerts[0][1]["count"] == 50
    late = Observation("u", "x", t + dt.timedelta(hours=10, minutes=59), None, None, count=100)
    assert apply_rule(rule, [late], store, t + dt.timedelta(hours=12), judged) == []


def test_an_entity_silent_longer_than_its_history_learns_again():
    rule = _rule(min_count=5, history=5 * 86400.0, min_history=2 * 86400.0)
    start = dt.datetime(2024, 3, 1)
    rows = [
        Observation("u", None, start + dt.timedelta(hours=h), None, None, count=1)
        for h in range(24 * 4)
    ]
    back = start + dt.timedelta(days=20)  # 16 days of silence, then a burst
    rows.append(Observation("u", None, back, None, None, count=60))
    rows.append(Observation("u", None, back + dt.timedelta(hours=3), None, None, count=1))
    judged: list = []
    assert apply_rule(rule, rows, {}, back + dt.timedelta(hours=3), judged) == []
    burst = next(j for _, j in judged if j.count == 60)
    assert burst.learning and burst.buckets == 0


def _problems(
    tmp_path, header: str, select: str = "principal, eventID, eventTime, recipientAccountId"
):
    path = tmp_path / "b.sql"
    path.write_text(f"/*\nname: b\nkind: baseline\ndescription: d\nseverity: low\n{header}\n*/\n"
                    f"SELECT userIdentity.arn AS principal, eventName, {select.split(', ', 1)[1]}\n"
                    "FROM cloudtrail\n")  # fmt: skip
    rule, problems = read_rule(path)
    return [str(p) for p in problems + validate_rule(rule)]


def test_validate_checks_the_baseline_keys_with_positions(tmp_path):
    assert _problems(tmp_path, "entity: principal\ntop: eventName") == []
    found = _problems(tmp_path, "entity: principal\nbucket: 7 minutes\ndeviation: lots\ntop: nope")
    where = str(tmp_path / "b.sql")
    assert (
        f"{where}:8:12: deviation: 'lots': expected a number greater than 0, such as 5 or 3.5"
        in found
    )
    assert any("bucket: use a length that divides a day" in p for p in found)
    assert any("the result has no column 'nope' ('top' names it)" in p for p in found)
    assert any(
        "'value' does not apply" in p
        for p in _problems(tmp_path, "entity: principal\nvalue: eventName")
    )
    # account-wide: split by account needs the account in the result
    assert _problems(tmp_path, "scope: organization") == []
    missing = _problems(tmp_path, "scope: account", "principal, eventID, eventTime")
    assert any("scope: account splits the rule by account, but the result has no column "
               "recipientAccountId or account" in p for p in missing)  # fmt: skip
    assert any(
        "expected one of account, organization" in p for p in _problems(tmp_path, "scope: team")
    )


def test_dedup_keeps_one_alert_per_entity_within_its_window_and_sinks_explain_it():
    from loader.alerts.content import summary_lines
    from loader.engine.records import alert_records

    rule = _rule(min_history=0.0, min_count=5)  # dedup: 6 hours
    t = dt.datetime(2024, 3, 1)
    rows = [Observation("u", "iam:ListUsers", t + dt.timedelta(hours=h), None, None, count=1)
            for h in range(48)]  # fmt: skip
    rows += [Observation("u", "iam:ListRoles", t + dt.timedelta(hours=h, minutes=5), None, None,
                         count=40) for h in (30, 31, 40)]  # fmt: skip
    rows.sort(key=lambda o: o.time)
    alerts = apply_rule(rule, rows, {}, t + dt.timedelta(hours=48))
    assert [seen.time.hour for seen, _, _ in alerts] == [6, 16]  # 31:00 within 6 h of 30:00
    undeduplicated = apply_rule(_rule(min_history=0.0, min_count=5, dedup=0.0), rows, {},
                                t + dt.timedelta(hours=48))  # fmt: skip
    assert len(undeduplicated) == 3
    record = alert_records(rule, alerts[:1])[0]
    alert = {"rule": rule.name, "kind": "baseline", "severity": "medium", "entity": "u",
             "details": record[9], "alert_id": "x", "account": None, "source_ip": None}  # fmt: skip
    lines = dict(summary_lines(alert))
    assert lines["Departure"].startswith("41 rows in 1 hour from 2024-03-02 06:00 UTC; usual 1")
    assert lines["Most frequent"] == "iam:ListRoles (40), iam:ListUsers (1)"


def test_account_wide_rules_are_split_by_account_unless_organization(tmp_path):
    from loader.engine.plan import plan_rules
    from loader.engine.sql import derived_key_sql, fused_pass_sql

    def plan(scope: str):
        path = tmp_path / "calls_per_account.sql"
        path.write_text("/*\nname: calls_per_account\nkind: baseline\ndescription: d\n"
                        f"severity: low\n{scope}*/\nSELECT eventID, eventTime, recipientAccountId "
                        "FROM cloudtrail\n")  # fmt: skip
        rule, problems = read_rule(path)
        assert problems + validate_rule(rule) == []
        return plan_rules([rule])

    by_account = fused_pass_sql(plan(""), "events")
    assert "'entity', CAST((recipientAccountId) AS STRING)" in by_account
    assert "floor(unix_seconds(CAST((eventTime) AS TIMESTAMP)) / 3600)" in by_account
    together = fused_pass_sql(plan("scope: organization\n"), "events")
    assert "'entity', CAST(NULL AS STRING)" in together
    # an account-wide profile's key: the account, then the value (the value alone together)
    assert "concat_ws('|', entity, coalesce(value, ''))" in derived_key_sql(["new_source_ip"])
