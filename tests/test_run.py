"""`run`: the history replayed in time order, then new files only, and in the end exactly the
alerts `detect` raises over the same events (same alert_ids). The runner's state step, fed the
same history batch by batch, raises those alerts too; and those alerts tell the attack story
(one `detect` over the story serves all three checks)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import pytest

from loader.cli import main
from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import SampleSpec, write_sample

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def story(spark, tmp_path_factory):
    """Three weeks of generated history with the attack story, and `detect`'s alerts over it
    (every bundled rule): the reference both tests compare with."""
    logs = tmp_path_factory.mktemp("run_story") / "logs"
    summary = write_sample(str(logs), SampleSpec(events=6000, days=21))
    sources = [
        "--geoip-city-db", str(logs / SAMPLE_FILES["geoip_city_db"]),
        "--geoip-asn-db", str(logs / SAMPLE_FILES["geoip_asn_db"]),
        "--tor-exit-list", str(logs / SAMPLE_FILES["tor_exit_list"]),
    ]  # fmt: skip
    output = logs.parent / "detect.jsonl"
    detect = ["detect", "--source", str(logs / "AWSLogs"), "--database", "rundetect"]
    assert main([*detect, "--output", str(output), *sources]) == 0
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    return logs, summary, sources, alerts


def test_run_replays_history_then_new_files_and_agrees_with_detect(spark, story, tmp_path, capsys):
    logs, summary, sources, reference = story
    expected = {alert["alert_id"] for alert in reference}

    # the attack day's files land later: hold them back from the first run
    last_day = summary.days[-1].replace("-", "/")
    held = tmp_path / "held"
    late = [p for p in (logs / "AWSLogs").rglob("*.json.gz") if f"/{last_day}/" in str(p)]
    assert late
    for path in late:
        target = held / path.relative_to(logs)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    run = [
        "run", "--source", str(logs / "AWSLogs"), "--once", "--database", "runtest",
        "--checkpoint", str(tmp_path / "checkpoint"), *sources,
    ]  # fmt: skip
    capsys.readouterr()
    assert main(run) == 0
    first = capsys.readouterr().out
    history = {r.alert_id for r in spark.sql("SELECT alert_id FROM runtest.alerts").collect()}
    assert history and history < expected
    files = [p for p in (logs / "AWSLogs").rglob("*_CloudTrail_*.json.gz")]
    events = sum(len(json.loads(gzip.decompress(p.read_bytes()))["Records"]) for p in files)
    assert f"batch 0: events {events:,}, files {len(files)}, alerts " in first, first
    # the sample's Tor list is of its last day, held back here: the runner says so
    assert "batch 0: blind spot: Tor exit lists: no list in force for " in first

    for path in late:  # they land
        shutil.move(held / path.relative_to(logs), path)
    assert main(run) == 0
    second = capsys.readouterr().out
    assert "batch 0:" not in second
    late_files = sum("_CloudTrail_" in p.name for p in late)
    assert f"batch 1: events {summary.events - events:,}, files {late_files}, alerts " in second
    spark.catalog.refreshTable("runtest.alerts")
    rows = spark.sql("SELECT alert_id, batch_id, event_time FROM runtest.alerts").collect()
    assert {r.alert_id for r in rows} == expected
    assert len(rows) == len(expected)  # none twice
    # the second run read only the new files: its alerts are all from the attack day
    assert all(r.event_time.date().isoformat() == summary.days[-1] for r in rows if r.batch_id == 1)
    # profile state is queryable: which countries has dave used, since when, how often
    dave = f"arn:aws:iam::{summary.accounts[0]}:user/dave"
    spark.catalog.refreshTable("runtest.profile_state_log")  # written by the stream's session
    countries = {
        r.value: r
        for r in spark.sql(
            "SELECT value, first_seen, last_seen, seen_count FROM runtest.profile_state "
            f"WHERE rule = 'new_country_for_principal' AND entity = '{dave}'"
        ).collect()
    }
    assert set(countries) == {"United States", "China", "Sweden"}
    assert countries["United States"].seen_count > countries["China"].seen_count >= 1
    assert countries["China"].first_seen.isoformat().startswith(f"{summary.days[-1]}T02:0")


FAILING_RULE = """/*
name: breaks_at_runtime
kind: alert
description: casts a name to a number, which fails at runtime under ANSI SQL
severity: low
entity: actor
*/
SELECT eventTime, eventID, userIdentity.arn AS actor
FROM cloudtrail WHERE CAST(eventName AS INT) > 0
"""


def test_a_rule_failing_at_runtime_is_reported_and_the_others_go_on(spark, tmp_path, capsys):
    from loader.rules.validate import SQL

    logs = tmp_path / "logs"
    write_sample(str(logs), SampleSpec(events=300, days=2))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "breaks_at_runtime.sql").write_text(FAILING_RULE)
    root_rule = SQL / "alerts" / "root_account_usage.sql"
    shutil.copy(root_rule, rules / root_rule.name)
    run = [
        "run", "--source", str(logs / "AWSLogs"), "--once", "--database", "runfail",
        "--rules", str(rules),
    ]  # fmt: skip
    capsys.readouterr()
    assert main([*run, "--checkpoint", str(tmp_path / "ck1")]) == 0
    out = capsys.readouterr().out
    assert "rule breaks_at_runtime FAILED, left out of this batch: " in out
    assert f"{rules / 'breaks_at_runtime.sql'}: " in out
    assert "CAST_INVALID_INPUT" in out, out
    spark.catalog.refreshTable("runfail.alerts")
    rules_alerted = {
        r.rule for r in spark.sql("SELECT DISTINCT rule FROM runfail.alerts").collect()
    }
    assert rules_alerted == {"root_account_usage"}

    assert main([*run, "--checkpoint", str(tmp_path / "ck2"), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "rule failed (--strict): breaks_at_runtime" in out


def _alert_id(rule: str, event_id, entity, value) -> str:
    parts = [rule, event_id or "", entity or "", value or ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def test_state_batch_by_batch_and_no_fuse_equal_detect(spark, story):
    """Every bundled rule's observations of the story cut into 7 micro-batches in time order
    and applied to one store a batch at a time (the runner's stateful step): exactly
    `detect`'s alerts over the whole history at once. And every rule alone, as written (UDFs
    called per event, `--no-fuse`): the same alert ids with the same details."""
    from loader.batch.detect import source_events
    from loader.engine.evaluate import cache_events, evaluate
    from loader.engine.observe import observe
    from loader.engine.plan import plan_rules
    from loader.engine.step import apply_rule, observations_of
    from loader.rules.validate import load_valid_rules
    from udfs.spark import EnrichmentConfig, register_udfs

    logs, _, _, reference = story
    session = spark.newSession()
    config = EnrichmentConfig(
        geoip_city_db=str(logs / SAMPLE_FILES["geoip_city_db"]),
        geoip_asn_db=str(logs / SAMPLE_FILES["geoip_asn_db"]),
        tor_exit_list=str(logs / SAMPLE_FILES["tor_exit_list"]),
    )
    enrichment = register_udfs(session, config, refresh=False)
    rules = load_valid_rules([])
    events, _ = cache_events(source_events(session, str(logs / "AWSLogs")), None)
    try:
        observed = observe(events, plan_rules(rules), 0, enrichment=enrichment)
        frame = observed.observations.toPandas()
        alone = evaluate(plan_rules(rules, fuse=False), events, enrichment=enrichment)
        assert not alone.errors
        alone_alerts = sorted(
            (a.alert_id, a.rule, json.dumps(json.loads(a.details), sort_keys=True))
            for a in alone.alerts.collect()
        )
    finally:
        events.unpersist()
    assert not observed.errors
    assert alone_alerts == sorted(
        (a["alert_id"], a["rule"], json.dumps(a["details"], sort_keys=True)) for a in reference
    )
    batches, total = 7, 0
    for rule in rules:
        expected = {a["alert_id"] for a in reference if a["rule"] == rule.name}
        seen = observations_of(frame[frame["rule"] == rule.name])
        store: dict = {}
        got = set()
        size = -(-len(seen) // batches) or 1
        for start in range(0, len(seen), size):
            for one, _, _ in apply_rule(rule, seen[start : start + size], store):
                got.add(_alert_id(rule.name, one.event_id, one.entity, one.value))
        assert got == expected, f"{rule.name}: {len(got)} alerts batch by batch, {len(expected)}"
        total += len(expected)
    assert total >= 26  # at least the attack story's alerts


def test_the_bundled_pack_tells_the_attack_story_and_stays_quiet_while_learning(story):
    """The whole bundled pack over three weeks of generated history: on the attack's hour every
    step is flagged by the rule made for it, attack-only rules never fire on normal life, and
    no profile alerts inside its first 14 days."""
    import datetime as dt

    from loader.sample.generate import ATTACK_NEW_USER, ATTACK_USER

    _, summary, _, alerts = story
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
        ("new_geoip_city", account, "Changchun, China"),
        ("new_geoip_country", account, "China"),
        ("new_source_ip", account, "*"),
        ("new_source_ip", account, "*"),
        # ... and enumerates: far more refusals in that hour than dave's usual none
        ("access_denied_spike", dave, f"{summary.days[-1]} 02:00:00"),
        ("unauthorized_api_calls_burst", dave, None),
        # 2. then through the Tor exit node
        ("new_country_for_principal", dave, "Sweden"),
        ("new_asn_for_principal", dave, asn),
        ("new_geoip_city", account, "Stockholm, Sweden"),
        ("new_source_ip", account, "*"),
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
        ("new_access_key", account, "*"),
        ("new_principal_arn", account, backdoor),
        ("new_principal_id", account, "*"),
        ("tor_exit_node_activity", backdoor, None),
    ])  # fmt: skip
    # rules made for attacks are silent on three weeks of normal life
    attack_only = {
        "tor_exit_node_activity", "root_console_login", "cloudtrail_logging_tampered",
        "iam_access_key_created", "new_country_for_principal", "new_geoip_country",
        "new_asn_for_principal", "new_access_key", "new_principal_arn",
    }  # fmt: skip
    assert not [a for a in alerts if a["rule"] in attack_only and a not in story]
    # and so are the baselines: three weeks of normal life depart from nothing
    assert not [a for a in alerts if a["kind"] == "baseline" and a not in story]
    # profiles learn for 14 days (account-wide and per principal) before anything alerts
    first = dt.date.fromisoformat(summary.days[0])
    learned = (first + dt.timedelta(days=14)).isoformat()
    assert all(a["event_time"] >= learned for a in alerts if a["kind"] == "profile")


def test_a_checkpoint_write_left_unfinished_by_a_kill_is_removed(spark, tmp_path):
    """SIGKILL between Spark's temp write and its rename leaves `.0.UUID.tmp` in the offset log;
    Spark 4 then refuses to start. Only such leftovers go; the logs' real entries stay."""
    from loader.stream.checkpoint import remove_unfinished_writes

    uuid = "e3784096-eca6-4f02-9b98-ab391afa92bc"
    checkpoint = tmp_path / "observe"
    leftovers = ["offsets/.0.{u}.tmp", "offsets/..0.{u}.tmp.crc", "commits/.3.{u}.tmp",
                 "sources/0/.7.compact.{u}.tmp"]  # fmt: skip
    kept = ["offsets/0", "offsets/.0.crc", "commits/2", "sources/0/6", "metadata"]
    for name in [*leftovers, *kept]:
        path = checkpoint / name.format(u=uuid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    removed = remove_unfinished_writes(spark, str(checkpoint))
    # Hadoop's local file system deletes a file's .crc with it and never lists .crc files
    assert sorted(removed) == sorted(n.format(u=uuid) for n in leftovers if "crc" not in n)
    left = {str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file()}
    assert left == set(kept)
    assert remove_unfinished_writes(spark, str(tmp_path / "never-started")) == []
