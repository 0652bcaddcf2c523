"""`detect` over a generated history with the attack story: exactly the expected alerts, none
from activity inside a learning period, idempotent writes, JSON lines output, and rules
validated before Spark runs them."""

from __future__ import annotations

import json

import pytest

from loader.cli import main
from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import ATTACK_NEW_USER, ATTACK_USER, SampleSpec, write_sample

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


def test_detect_refuses_invalid_rules_before_starting(tmp_path, capsys):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "root_console_login.sql").write_text(ALERT.replace("eventName", "eventNme"))
    assert main(["detect", "--rules", str(rules), "--database", "detecttest"]) == 1
    err = capsys.readouterr().err
    assert "unknown column 'eventNme' (did you mean 'eventName'?)" in err
    assert f"{rules / 'root_console_login.sql'}:12:7:" in err


def test_the_bundled_pack_tells_the_attack_story_and_stays_quiet_while_learning(
    spark, tmp_path, capsys
):
    """The whole bundled pack over three weeks of generated history: on the attack's hour every
    step is flagged by the rule made for it, attack-only rules never fire on normal life, and
    no profile alerts inside its first 14 days."""
    import datetime as dt

    from loader.sample.generate import ATTACK_NEW_USER

    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=6000, days=21))
    output = tmp_path / "alerts.jsonl"
    args = [
        "detect", "--source", str(logs / "AWSLogs"), "--database", "packtest",
        "--output", str(output),
        "--geoip-city-db", str(logs / SAMPLE_FILES["geoip_city_db"]),
        "--geoip-asn-db", str(logs / SAMPLE_FILES["geoip_asn_db"]),
        "--tor-exit-list", str(logs / SAMPLE_FILES["tor_exit_list"]),
    ]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    account = summary.accounts[0]
    dave = f"arn:aws:iam::{account}:user/{ATTACK_USER}"
    root = f"arn:aws:iam::{account}:root"
    backdoor = f"arn:aws:iam::{account}:user/{ATTACK_NEW_USER}"
    attack_hour = f"{summary.days[-1]}T02:"
    story = [a for a in alerts if a["event_time"].startswith(attack_hour)]
    random_values = {"new_access_key", "new_principal_id", "new_source_ip"}  # keys, ids, IPs
    found = sorted(
        (a["rule"], a["entity"], "*" if a["rule"] in random_values else a["value"]) for a in story
    )
    asn = "AS198093 Foreningen for digitala fri"
    assert found == sorted([
        # 1. dave calls APIs from China: new for him, for the account's cities and countries
        ("new_country_for_principal", dave, "China"),
        ("new_asn_for_principal", dave, "AS4837 CHINA UNICOM China169 Backbone"),
        ("new_geoip_city", None, "Changchun, China"),
        ("new_geoip_country", None, "China"),
        ("new_source_ip", None, "*"),
        ("new_source_ip", None, "*"),
        # 2. then through the Tor exit node
        ("new_country_for_principal", dave, "Sweden"),
        ("new_asn_for_principal", dave, asn),
        ("new_geoip_city", None, "Stockholm, Sweden"),
        ("new_source_ip", None, "*"),
        ("tor_exit_node_activity", dave, None),
        # 3. root signs in through Tor without MFA
        ("root_console_login", root, None),
        ("root_account_usage", root, None),
        ("console_login_without_mfa", root, None),
        ("tor_exit_node_activity", root, None),
        ("new_country_for_principal", root, "Sweden"),
        ("new_asn_for_principal", root, asn),
        # 4. root stops CloudTrail
        ("cloudtrail_logging_tampered", root, None),
        ("new_sensitive_api_for_principal", root, "cloudtrail:StopLogging"),
        # 5. dave creates backup-admin and a key for it, used through Tor
        ("new_sensitive_api_for_principal", dave, "iam:CreateUser"),
        ("new_sensitive_api_for_principal", dave, "iam:CreateAccessKey"),
        ("iam_access_key_created", dave, None),
        ("new_access_key", None, "*"),
        ("new_principal_arn", None, backdoor),
        ("new_principal_id", None, "*"),
        ("tor_exit_node_activity", backdoor, None),
    ])  # fmt: skip
    # rules made for attacks are silent on three weeks of normal life
    attack_only = {
        "tor_exit_node_activity", "root_console_login", "cloudtrail_logging_tampered",
        "iam_access_key_created", "new_country_for_principal", "new_geoip_country",
        "new_asn_for_principal", "new_access_key", "new_principal_arn",
    }  # fmt: skip
    assert not [a for a in alerts if a["rule"] in attack_only and a not in story]
    # profiles learn for 14 days (account-wide and per principal) before anything alerts
    first = dt.date.fromisoformat(summary.days[0])
    learned = (first + dt.timedelta(days=14)).isoformat()
    assert all(a["event_time"] >= learned for a in alerts if a["kind"] == "profile")
