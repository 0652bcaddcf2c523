"""Baseline rules on Spark: a month of history through `detect` and `run` (the spike day
arriving as new files; a SIGKILL in the middle of it), the alerts equal with the same ids, the
judged buckets in `security.profile_baselines`; and account-wide profiles per account or per
organization in an organization trail."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections import Counter

import pytest

from loader.cli import main
from loader.rules.validate import SQL
from tests.baseline_history import (
    ACCOUNT,
    SPIKE_DAY,
    SPIKE_HOUR,
    arn,
    event,
    history_events,
    write_files,
)

pytestmark = pytest.mark.spark
RULE = str(SQL / "baselines" / "access_denied_spike.sql")
SPIKE_START = dt.datetime.combine(SPIKE_DAY, dt.time(SPIKE_HOUR))


@pytest.fixture(scope="module")
def month(spark, tmp_path_factory):
    """The month's files and `detect`'s alerts over them (the reference)."""
    root = tmp_path_factory.mktemp("baselines")
    events = history_events()
    paths = write_files(root / "logs", events)
    output = root / "detect.jsonl"
    detect = ["detect", "--source", str(root / "logs" / "AWSLogs"), "--rules", RULE,
              "--database", "basedetect", "--no-coverage", "--output", str(output)]  # fmt: skip
    assert main(detect) == 0
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    return root, events, paths, alerts


def test_detect_alerts_the_spike_alone_and_explains_it(month):
    _, events, _, alerts = month
    assert len(alerts) == 1
    alert = alerts[0]
    spiked = [e for e in events if e["userIdentity"]["arn"] == arn("steady-app")
              and e["eventTime"].startswith(SPIKE_START.strftime("%Y-%m-%dT%H"))]  # fmt: skip
    assert alert["rule"] == "access_denied_spike" and alert["kind"] == "baseline"
    assert alert["entity"] == arn("steady-app") and alert["account"] == ACCOUNT
    assert alert["value"] == str(SPIKE_START) and alert["event_time"] == SPIKE_START.isoformat()
    assert alert["event_id"] is None
    details = alert["details"]
    assert details["count"] == len(spiked)
    assert details["baseline"]["median"] == 4 and details["baseline"]["buckets"] > 24 * 20
    assert details["deviation"] > details["deviation_allowed"] == 5
    top = Counter(f"{e['eventSource'].split('.')[0]}:{e['eventName']}" for e in spiked)
    assert details["top"]["values"][0] == {"value": top.most_common(1)[0][0],
                                           "count": top.most_common(1)[0][1]}  # fmt: skip
    assert alert["title"] == f"access_denied_spike: {arn('steady-app')} {details['summary']}"
    assert details["summary"].startswith(f"{len(spiked)} rows in 1 hour from 2024-03-28 14:00 UTC")


def _hold_back(paths, since: dt.date, root):
    """Move the files of ``since`` and later aside; a function that puts them back."""
    held = [p for p in paths if dt.date(*map(int, p.parent.parts[-3:])) >= since]
    aside = root / "aside"
    for path in held:
        target = aside / path.relative_to(root / "logs")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)

    def land(keep=lambda p: True):
        for path in held:
            if keep(path) and (aside / path.relative_to(root / "logs")).exists():
                shutil.move(aside / path.relative_to(root / "logs"), path)

    return land


def test_run_with_the_spike_day_as_new_files_equals_detect(spark, month, tmp_path, capsys):
    root, events, paths, reference = month
    logs = tmp_path / "logs"
    shutil.copytree(root / "logs", logs)
    paths = [logs / p.relative_to(root / "logs") for p in paths]
    land = _hold_back(paths, SPIKE_DAY, tmp_path)
    run = ["run", "--source", str(logs / "AWSLogs"), "--rules", RULE, "--once", "--database",
           "baserun", "--checkpoint", str(tmp_path / "ck"), "--no-coverage"]  # fmt: skip
    assert main(run) == 0
    spark.catalog.refreshTable("baserun.alerts")
    assert [r.title for r in spark.table("baserun.alerts").collect()] == []
    land()
    capsys.readouterr()
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "alerts 1 (access_denied_spike 1)" in out, out
    spark.catalog.refreshTable("baserun.alerts")
    rows = spark.table("baserun.alerts").collect()
    assert [r.alert_id for r in rows] == [a["alert_id"] for a in reference]
    assert json.loads(rows[0].details) == reference[0]["details"]
    # every closed hour of every principal, as analysts query it
    spark.catalog.refreshTable("baserun.profile_baseline_log")
    judged = spark.sql(
        "SELECT entity, bucket_start, count, median, alerted FROM baserun.profile_baselines"
    ).collect()
    hours = Counter(
        (e["userIdentity"]["arn"], e["eventTime"][:13]) for e in events
    )  # fmt: skip
    newest = max(e["eventTime"] for e in events)
    closed = {k: n for k, n in hours.items()
              if dt.datetime.strptime(k[1], "%Y-%m-%dT%H") + dt.timedelta(hours=1, minutes=30)
              < dt.datetime.strptime(newest, "%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    assert {
        (r.entity, r.bucket_start.strftime("%Y-%m-%dT%H")): r["count"] for r in judged
    } == closed
    assert [(r.entity, r.bucket_start) for r in judged if r.alerted] == [
        (arn("steady-app"), SPIKE_START)
    ]


@pytest.mark.slow
def test_killed_in_the_middle_of_the_spike_day_still_one_alert(spark, month, tmp_path):
    """SIGKILL while the observe query writes the batch holding the spike's hour, then while
    the apply query runs; the third start finishes with exactly detect's one alert."""
    from tests.test_persistence import LOADER, SPARK
    from tests.test_run_kill import _wait_for

    root, _, paths, reference = month
    logs = tmp_path / "logs"
    shutil.copytree(root / "logs", logs)
    work, checkpoint = tmp_path / "work", tmp_path / "work" / "ck"
    work.mkdir()
    # 120 files, 24 a batch: the spike day's (files 108-111) are in the last batch, number 4
    command = [*LOADER, "run", "--source", str(logs / "AWSLogs"), "--rules", RULE, "--once",
               "--max-files", "24", "--no-coverage", "--database", "basekill",
               "--checkpoint", str(checkpoint), *SPARK]  # fmt: skip
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, cwd=work, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip

    observations = checkpoint / "observations"
    proc = start()
    _wait_for(lambda: (observations / "_partial-000000004").is_dir(), proc)
    proc.kill()
    proc.wait()
    assert not (observations / "batch-000000004").exists()
    state = checkpoint / "state"
    proc = start()
    _wait_for(lambda: (state / "offsets" / "0").exists(), proc)
    proc.kill()
    proc.wait()
    assert not (state / "commits" / "0").exists()
    proc = start()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    warehouse = work / "spark-warehouse" / "basekill.db"
    alerts = spark.read.parquet(str(warehouse / "alerts")).collect()
    assert [r.alert_id for r in alerts] == [a["alert_id"] for a in reference]


ORG = "o-exampleorg1"
OTHER = "444455556666"
SHARED_IP = "81.2.69.160"  # GB in the sample's GeoIP test ranges


def test_an_address_known_in_one_account_alerts_on_first_use_in_another(spark, tmp_path):
    """Account A uses one address for three weeks, account B another; then B uses A's. With
    `scope: account` (the default) that is new for B; with `scope: organization` it is not."""
    events = []
    start = dt.datetime(2024, 3, 1, 10)
    for d in range(21):
        at = start + dt.timedelta(days=d)
        events.append(event("alice", at, "s3:ListBuckets", d, ACCOUNT, False, SHARED_IP))
        events.append(event("bob", at, "s3:ListBuckets", d, OTHER, False, "89.160.20.112"))
    first_use = start + dt.timedelta(days=21, hours=2)
    events.append(event("bob", first_use, "s3:ListBuckets", 99, OTHER, False, SHARED_IP))
    write_files(tmp_path / "logs", events, hours=24, org=ORG)
    rules = tmp_path / "rules"
    rules.mkdir()
    source = (SQL / "profiles" / "new_source_ip.sql").read_text()
    (rules / "new_source_ip.sql").write_text(source)
    org = source.replace("name: new_source_ip", "name: new_source_ip_org").replace(
        "value: source_ip", "value: source_ip\nscope: organization"
    )
    (rules / "new_source_ip_org.sql").write_text(org)
    output = tmp_path / "alerts.jsonl"
    detect = ["detect", "--source", str(tmp_path / "logs" / "AWSLogs"), "--rules", str(rules),
              "--database", "basescope", "--no-coverage", "--output", str(output)]  # fmt: skip
    assert main(detect) == 0
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(a["rule"], a["entity"], a["value"], a["account"]) for a in alerts] == [
        ("new_source_ip", OTHER, SHARED_IP, OTHER)
    ]
    assert alerts[0]["details"]["scope"] == "account"
    assert alerts[0]["event_time"] == first_use.isoformat()
