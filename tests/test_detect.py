"""`detect` over a generated history with the attack story: exactly the expected alerts, none
from activity inside a learning period, idempotent writes, JSON lines output, and rules
validated before Spark runs them."""

from __future__ import annotations

import json

import pytest

from loader.cli import main
from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import ATTACK_NEW_USER, ATTACK_USER, SampleSpec, write_sample
from tests.test_run import FAILING_RULE

pytestmark = pytest.mark.spark

PROFILE = """/*
name: new_country_for_principal
kind: profile
description: A principal acts from a country it has never acted from before.
severity: medium
entity: principal_arn
value: country
learning: 2 days
*/
SELECT userIdentity.arn AS principal_arn, geoip_country(sourceIPAddress) AS country,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE userIdentity.type IN ('IAMUser', 'AssumedRole', 'Root', 'FederatedUser')
"""
ALERT = """/*
name: root_console_login
kind: alert
description: The root user signed in to the console.
severity: high
entity: principal
dedup: 1 hour
*/
SELECT coalesce(userIdentity.arn, userIdentity.principalId) AS principal,
       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion
FROM cloudtrail
WHERE eventName = 'ConsoleLogin' AND userIdentity.type = 'Root'
  AND get_json_object(responseElements, '$.ConsoleLogin') = 'Success'
"""


def test_detect_raises_exactly_the_attack_alerts(spark, tmp_path, capsys):
    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=1500, days=4))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "new_country_for_principal.sql").write_text(PROFILE)
    (rules / "root_console_login.sql").write_text(ALERT)
    output = tmp_path / "alerts.jsonl"
    args = [
        "detect", "--source", str(logs / "AWSLogs"), "--rules", str(rules),
        "--database", "detecttest", "--output", str(output),
        "--geoip-city-db", str(logs / SAMPLE_FILES["geoip_city_db"]),
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    account = summary.accounts[0]
    found = sorted((a["rule"], a["entity"], a["value"]) for a in alerts)
    dave = f"arn:aws:iam::{account}:user/{ATTACK_USER}"
    root = f"arn:aws:iam::{account}:root"
    assert found == [
        ("new_country_for_principal", root, "Sweden"),  # root signs in from the Tor node
        ("new_country_for_principal", dave, "China"),
        ("new_country_for_principal", dave, "Sweden"),
        ("root_console_login", root, None),
    ]
    # backup-admin and root act for the first time during the attack: still learning
    assert not any(ATTACK_NEW_USER in (a["entity"] or "") for a in alerts)
    assert all(a["event_time"].startswith(summary.days[-1]) for a in alerts)
    china = next(a for a in alerts if a["value"] == "China")
    assert china["details"]["first_time_seen"] is True
    assert china["details"]["recent_values"] == ["United States"]
    assert "| new_country_for_principal | 3 | 2 |" in printed
    # detect's events relation does not outlive it (it would shadow DATABASE.cloudtrail)
    assert not [t for t in spark.catalog.listTables() if t.name == "cloudtrail" and t.isTemporary]
    stored = spark.sql("SELECT alert_id FROM detecttest.alerts").collect()
    assert sorted(r[0] for r in stored) == sorted(a["alert_id"] for a in alerts)
    # a second run over the same history adds nothing: the ids are deterministic
    assert main(args) == 0
    assert "new in table: 0" in capsys.readouterr().out
    spark.catalog.refreshTable("detecttest.alerts")
    assert spark.table("detecttest.alerts").count() == 4

    # a rule failing at runtime inside the fused group: named with its file, the others alert
    (rules / "breaks_at_runtime.sql").write_text(FAILING_RULE)
    failing = ["detectfail" if a == "detecttest" else a for a in args]
    assert main(failing) == 1
    printed = capsys.readouterr().out
    assert f"| breaks_at_runtime | 0 | 0 | FAILED: {rules / 'breaks_at_runtime.sql'}: " in printed
    assert "CAST_INVALID_INPUT" in printed
    again = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(a["alert_id"] for a in again) == sorted(a["alert_id"] for a in alerts)


def test_detect_refuses_invalid_rules_before_starting(tmp_path, capsys):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "root_console_login.sql").write_text(ALERT.replace("eventName", "eventNme"))
    assert main(["detect", "--rules", str(rules), "--database", "detecttest"]) == 1
    err = capsys.readouterr().err
    assert "unknown column 'eventNme' (did you mean 'eventName'?)" in err
    assert f"{rules / 'root_console_login.sql'}:12:7:" in err


def test_detect_without_tables_says_what_to_run_in_one_line(spark, capsys):
    assert main(["detect", "--database", "nothing_here"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no table nothing_here.cloudtrail here: run `python -m loader "
                          "create-hive-table --source PATH` first")  # fmt: skip
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_detect_says_where_enrichment_could_not_answer(spark, tmp_path, capsys):
    """A backtest whose first days predate the Tor list, and one address GeoIP does not know."""
    import gzip

    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=600, days=3))
    account = summary.accounts[1]
    folder = logs / "AWSLogs" / account / "CloudTrail" / "us-east-1" / "2024" / "03" / "31"
    folder.mkdir(parents=True, exist_ok=True)
    event = {"eventVersion": "1.08", "eventTime": "2024-03-31T12:00:00Z", "eventID": "x-1",
             "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com",
             "sourceIPAddress": "8.8.8.8", "recipientAccountId": account,
             "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:x"}}  # fmt: skip
    name = f"{account}_CloudTrail_us-east-1_20240331T1205Z_unknownaddress.json.gz"
    (folder / name).write_bytes(gzip.compress(json.dumps({"Records": [event]}).encode()))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "root_console_login.sql").write_text(ALERT)
    args = [
        "detect", "--source", str(logs / "AWSLogs"), "--database", "blindtest",
        "--rules", str(rules), "--no-coverage",
        "--geoip-city-db", str(logs / SAMPLE_FILES["geoip_city_db"]),
        "--tor-exit-list", str(logs / SAMPLE_FILES["tor_exit_list"]),
    ]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    tor = next(line for line in out.splitlines() if line.startswith("blind spot: Tor exit lists"))
    # the sample's list is of its last day, 23:00, answering for 24 h either side
    assert f"{summary.days[0]} (" in tor and f"{summary.days[1]} (" in tor
    assert f"{summary.days[2]} (" not in tor and "CollecTor" in tor
    geo = next(line for line in out.splitlines() if line.startswith("blind spot: GeoIP"))
    assert "1 of " in geo and "(e.g. 8.8.8.8)" in geo
