"""The runner's per-key state without a JVM: learning, expiry and compaction, thresholds that
count rows at the same instant, dedup windows."""

from __future__ import annotations

import datetime as dt

from loader.engine.state import DedupState, ProfileState, ThresholdState

DAY = 86400.0
T0 = dt.datetime(2024, 3, 1, 9, 0)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def test_profile_learns_then_alerts_and_forgets_expired_values():
    state = ProfileState()
    assert state.observe(at(0), None, 14 * DAY, 30 * DAY) is None  # starts the learning
    assert state.observe(at(1), "GB", 14 * DAY, 30 * DAY) is None  # learning
    assert state.observe(at(15), "GB", 14 * DAY, 30 * DAY) is None  # known
    details = state.observe(at(16), "CN", 14 * DAY, 30 * DAY)
    assert details == {
        "first_time_seen": True, "last_seen_before": None,
        "values_before": 1, "recent_values": ["GB"],
    }  # fmt: skip
    # GB unseen for more than 30 days: new again, and compaction drops it
    again = state.observe(at(50), "GB", 14 * DAY, 30 * DAY)
    assert again is not None and again["first_time_seen"] is False
    assert again["last_seen_before"] == at(15)
    assert sorted(state.compact(at(90), 30 * DAY)) == ["CN", "GB"] and state.values == {}
    assert state.start == at(0)  # the entity stays past its learning


def test_threshold_counts_peers_at_the_same_instant_and_slides():
    state = ThresholdState()
    minute = dt.timedelta(minutes=1)
    first = [T0, T0, T0 + minute]
    assert state.counts(first, 120) == [2, 2, 3]
    # the next batch continues the window: T0's rows drop out after 2 minutes
    assert state.counts([T0 + 3 * minute], 120) == [1 + 1]


def test_dedup_keeps_one_alert_per_window():
    state = DedupState()
    kept = [state.keep(T0 + dt.timedelta(minutes=m), 3600) for m in (0, 30, 59, 60, 61)]
    assert kept == [True, False, False, True, False]


def test_a_late_event_adds_no_alert_for_a_known_value():
    state = ProfileState()
    state.observe(at(0), "GB", 14 * DAY, 180 * DAY)
    assert state.observe(at(20), "CN", 14 * DAY, 180 * DAY) is not None
    # a file from day 18 delivered after day 20's: CN is known, its first sighting moves back
    assert state.observe(at(18), "CN", 14 * DAY, 180 * DAY) is None
    assert state.values["CN"].first == at(18) and state.values["CN"].last == at(20)
