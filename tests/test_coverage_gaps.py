"""Judging log delivery without Spark: thresholds, region and account gaps, open gaps, missing
days, dedup, trail stops, and a generated history (names only) with and without removed files.
The Spark side (tests/test_coverage.py) must compute the same series as `python_series` here."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from itertools import pairwise
from pathlib import Path

from loader.alerts.model import ALERT_COLUMNS
from loader.coverage.alerts import RULE, alert_id, alert_row
from loader.coverage.gaps import (
    ALL_REGIONS,
    LEFT_OUT,
    Gap,
    GapSettings,
    Interval,
    Series,
    deduplicated,
    delivered_at,
    duration_text,
    judge,
    missing_days,
)
from loader.coverage.trails import TrailEvent, trail_spans
from loader.sample.generate import SampleSpec, write_sample
from loader.tables.filecheck import check_document

T0 = dt.datetime(2024, 3, 1)
NAME = re.compile(r"(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8}T\d{4})Z_")
HISTORY = SampleSpec(events=7_000, days=2, file_minutes=60)


def percentile(values: list[float], q: float) -> float | None:
    """Spark's exact ``percentile``: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def python_series(
    deliveries: list[tuple[str, str, dt.datetime]], min_gap: float
) -> tuple[list[Series], list[Interval]]:
    """The oracle: series and long intervals from (account, region, delivered) in Python."""
    times: dict[tuple[str, str], set[dt.datetime]] = {}
    for account, region, moment in deliveries:
        times.setdefault((account, region), set()).add(moment)
        times.setdefault((account, ALL_REGIONS), set()).add(moment)
    series, intervals = [], []
    for (account, region), moments in sorted(times.items()):
        ordered = sorted(moments)
        gaps = sorted((b - a).total_seconds() for a, b in pairwise(ordered))
        usual = gaps[: len(gaps) - max(1, int(len(gaps) * LEFT_OUT))]
        series.append(Series(account, region, len(ordered), ordered[0], ordered[-1],
                             percentile(usual, 0.99)))  # fmt: skip
        intervals += [
            Interval(account, region, a, b)
            for a, b in pairwise(ordered)
            if (b - a).total_seconds() > min_gap
        ]
    return series, intervals


def deliveries_of(root: Path) -> list[tuple[str, str, dt.datetime]]:
    found = []
    for path in root.rglob("*.json.gz"):
        match = NAME.match(path.name)
        assert match, path
        found.append((match[1], match[2], dt.datetime.strptime(match[3], "%Y%m%dT%H%M")))
    return found


def steady(account: str, region: str, start: dt.datetime, hours: float, seed: int = 1):
    """Files about every 5 minutes with delivery jitter (2 to 9 minutes apart)."""
    rng = random.Random(seed)
    moment, out = start, []
    while moment < start + dt.timedelta(hours=hours):
        out.append((account, region, moment))
        moment += dt.timedelta(seconds=rng.uniform(120, 540))
    return out


def judged(deliveries, settings=None, reference=None):
    settings = settings or GapSettings()
    series, intervals = python_series(deliveries, settings.min_gap)
    return judge(series, intervals, settings, reference).gaps


def test_delivery_time_is_the_stamp_in_the_name_else_the_modification_time():
    name = "s3://b/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/111122223333_CloudTrail_us-east-1_20240305T1405Z_AbCd.json.gz"
    assert delivered_at(name) == dt.datetime(2024, 3, 5, 14, 5)
    modified = dt.datetime(2024, 3, 5, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert delivered_at("/logs/other.json.gz", modified) == dt.datetime(2024, 3, 5, 13, 0)
    assert delivered_at("x_20241399T9999Z_y.json.gz") is None  # not a time, nothing else


def test_steady_delivery_with_jitter_has_no_gap():
    files = []
    for n, region in enumerate(("us-east-1", "us-west-2", "eu-west-1")):
        files += steady("111122223333", region, T0, 72, seed=n)
    assert judged(files) == []


def test_a_region_silent_while_the_others_deliver_is_one_region_gap():
    files = steady("111122223333", "us-west-2", T0, 48, seed=2)
    east = steady("111122223333", "us-east-1", T0, 48, seed=3)
    hole = (T0 + dt.timedelta(hours=20), T0 + dt.timedelta(hours=25))
    files += [f for f in east if not hole[0] <= f[2] < hole[1]]
    (gap,) = judged(files)
    assert (gap.account, gap.region) == ("111122223333", "us-east-1")
    assert gap.start < hole[0] and gap.end >= hole[1]
    assert 5 * 3600 <= gap.seconds < 5.3 * 3600
    assert gap.threshold == 3600  # 3 x p99 of ~9 min is under the 1 h floor
    assert "for 5 h" in gap.reason and "other regions delivered meanwhile" in gap.reason


def test_an_account_silent_everywhere_is_one_open_gap_for_the_account():
    files = steady("222233334444", "us-east-1", T0, 72, seed=4)  # the newest delivery
    for n, region in enumerate(("us-east-1", "eu-west-1")):
        files += steady("111122223333", region, T0, 48, seed=10 + n)
    (gap,) = judged(files)
    assert (gap.account, gap.region, gap.end) == ("111122223333", ALL_REGIONS, None)
    assert gap.entity == "111122223333/*"
    assert 23 * 3600 < gap.seconds < 24.2 * 3600
    assert "from any region of the account since 2024-03-02 23:5" in gap.reason


def test_sparse_series_get_their_own_threshold_and_young_ones_are_not_judged():
    sparse = [("111122223333", "ap-south-1", T0 + dt.timedelta(hours=6 * i)) for i in range(40)]
    sparse.pop(20)  # 12 h instead of the usual 6 h: under 3 x 6 h
    assert judged(sparse) == []
    young = [("111122223333", "sa-east-1", T0 + dt.timedelta(minutes=5 * i)) for i in range(8)]
    young.append(("111122223333", "sa-east-1", T0 + dt.timedelta(hours=9)))
    assert judged(young) == []  # 9 files: no usual interval yet
    assert judged(young, GapSettings(min_files=5))  # enough for a looser setting


def test_the_clock_as_reference_finds_a_source_that_stopped_altogether():
    files = steady("111122223333", "us-east-1", T0, 24)
    assert judged(files) == []
    later = T0 + dt.timedelta(hours=30)
    (gap,) = judged(files, reference=later)
    assert gap.end is None and gap.region == ALL_REGIONS


def test_whole_days_are_named():
    assert missing_days(dt.datetime(2024, 3, 1, 23), dt.datetime(2024, 3, 4, 1)) == [
        dt.date(2024, 3, 2), dt.date(2024, 3, 3)
    ]  # fmt: skip
    assert missing_days(dt.datetime(2024, 3, 1, 1), dt.datetime(2024, 3, 1, 23)) == []
    files = steady("111122223333", "us-east-1", T0, 24, seed=5)
    files += steady("111122223333", "us-east-1", T0 + dt.timedelta(days=2), 24, seed=6)
    (gap,) = judged(files)
    assert "whole day(s) without a file: 2024-03-02" in gap.reason
    assert [duration_text(s) for s in (40, 720, 18300, 97200, 86400)] == [
        "40 s", "12 min", "5 h 5 min", "1 d 3 h", "1 d"
    ]  # fmt: skip


def _gap(start_hour: float, entity=("111122223333", "us-east-1")) -> Gap:
    start = T0 + dt.timedelta(hours=start_hour)
    return Gap(*entity, start, start + dt.timedelta(hours=2), start, 3600, 300, "r")


def test_dedup_keeps_one_alert_per_entity_within_the_window_and_the_same_gap_again():
    gaps = [_gap(0), _gap(3), _gap(7), _gap(3, ("111122223333", "eu-west-1"))]
    kept = deduplicated(gaps, 6 * 3600)
    assert [(g.region, g.start.hour) for g in kept] == [
        ("us-east-1", 0), ("eu-west-1", 3), ("us-east-1", 7)
    ]  # fmt: skip
    earlier = {"111122223333/us-east-1": [T0]}
    assert [g.start.hour for g in deduplicated([_gap(0), _gap(2)], 6 * 3600, earlier)] == [0]


def test_gap_alert_row_has_a_stable_id_and_says_why():
    gap = _gap(5)
    names = [name for name, _ in ALERT_COLUMNS]
    row = dict(zip(names, alert_row(gap, 7, T0), strict=True))
    text = f"{RULE}||111122223333/us-east-1|2024-03-01 05:00:00"
    assert row["alert_id"] == alert_id(gap) == hashlib.sha256(text.encode()).hexdigest()
    assert (row["kind"], row["entity"], row["region"]) == ("coverage", gap.entity, "us-east-1")
    assert "for 2 h" in row["title"]
    assert '"gap_end": "2024-03-01T07:00:00"' in row["details"]


def test_trail_stops_pair_with_the_resume_that_follows():
    def ev(hour, name, trail="main", error=None):
        return TrailEvent(T0 + dt.timedelta(hours=hour), name, "111122223333", "us-east-1",
                          trail, "arn:aws:iam::111122223333:root", error)  # fmt: skip

    spans = trail_spans([
        ev(1, "StopLogging", error="AccessDenied"),  # failed: changed nothing
        ev(2, "StopLogging"), ev(3, "StopLogging"), ev(5, "StartLogging"),
        ev(6, "PutEventSelectors", "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"),
        ev(7, "DeleteTrail", "other"),
    ])  # fmt: skip
    assert [(s.trail, s.start.hour, s.end and s.end.hour, s.stop) for s in spans] == [
        ("main", 2, 5, True), ("main", 6, 6, False), ("other", 7, None, True)
    ]  # fmt: skip
    assert "not resumed" in spans[2].render() and "until 2024-03-01 05:00" in spans[0].render()


def test_file_check_finds_the_newest_event():
    records = [{"eventTime": "2024-03-01T10:00:00Z"}, {"eventTime": "2024-03-01T11:30:00Z"},
               {"eventTime": "not a time"}, {"eventTime": 5}]  # fmt: skip
    assert check_document({"Records": records}).newest_event == "2024-03-01T11:30:00Z"
    assert check_document({"Records": [{}]}).newest_event is None


def test_generated_history_with_jitter_has_no_gap_and_removed_files_give_exactly_two(tmp_path):
    summary = write_sample(str(tmp_path), HISTORY)
    files = deliveries_of(tmp_path / "AWSLogs")
    assert len(files) == summary.files
    assert judged(files) == []
    first, second = summary.accounts
    day = dt.datetime.fromisoformat(summary.days[0])
    hole = (day + dt.timedelta(hours=10), day + dt.timedelta(hours=15))
    kept = [
        f for f in files
        if not (f[0] == second and f[1] == "us-east-1" and hole[0] <= f[2] < hole[1])
        and not (f[0] == first and f[2].date().isoformat() >= summary.days[1])
    ]  # fmt: skip
    gaps = judged(kept)
    assert [(g.account, g.region, g.end is None) for g in gaps] == [
        (second, "us-east-1", False), (first, ALL_REGIONS, True)
    ]  # fmt: skip


def test_no_coverage_turns_gap_judging_off_before_spark_is_touched():
    import pytest

    from loader.config import resolve
    from loader.coverage.batch import detect_coverage, gap_settings
    from loader.errors import ConfigError

    settings = resolve(None, {"no_coverage": True})
    assert detect_coverage(None, settings) is None  # no session needed, none used
    with pytest.raises(ConfigError, match="--gap-factor 0"):
        gap_settings(resolve(None, {"gap_factor": 0.0}))
    assert gap_settings(resolve(None, {"min_gap": "2h"})).min_gap == 7200


def test_sinks_say_what_a_gap_alert_is():
    import json as json_module

    from loader.alerts.sinks import SlackSink, subject, text_body

    names = [name for name, _ in ALERT_COLUMNS]
    alert = dict(zip(names, alert_row(_gap(5), 7, T0), strict=True))
    assert subject(alert).startswith("[MEDIUM] log_delivery_gap: no CloudTrail log files from")
    body = text_body(alert)
    assert "Gap: 2024-03-01T05:00:00 .. 2024-03-01T07:00:00" in body and "Why: r" in body
    assert "Event:" not in body  # no event stands behind a gap
    payload = SlackSink("slack", url="http://127.0.0.1:9/x").payload(alert)
    assert "111122223333 / us-east-1" in json_module.dumps(payload)
