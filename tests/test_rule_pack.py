"""The bundled rules: valid, each with sibling cases that must fire and must not, all passing,
and every rule running over the real corpus events without error."""

from __future__ import annotations

import json
import shutil

import pytest

from loader.engine.ruletests import load_cases, run_rule_tests, sibling
from loader.rules.validate import BUNDLED, load_rules
from loader.sample.enrichment_data import write_enrichment_data
from tests.corpus import corpus_dir
from udfs.spark import EnrichmentConfig, register_udfs


def _bundled():
    rules, problems = load_rules([str(p) for p in BUNDLED])
    return rules, problems


def test_bundled_rules_are_valid_and_each_has_firing_and_quiet_cases():
    rules, problems = _bundled()
    assert problems == []
    assert rules
    for rule in rules:
        cases, case_problems = load_cases(sibling(rule))
        assert case_problems == [], rule.name
        assert any(c.alerts > 0 for c in cases), f"{rule.name}: no case that must fire"
        assert any(c.alerts == 0 for c in cases), f"{rule.name}: no case that must not fire"


@pytest.fixture(scope="module")
def sample_session(spark, tmp_path_factory):
    """A session with the sample's GeoIP databases and Tor list, as `test-rules` uses."""
    root = tmp_path_factory.mktemp("rule_sources")
    city, asn, tor = write_enrichment_data(str(root))
    session = spark.newSession()
    config = EnrichmentConfig(geoip_city_db=city, geoip_asn_db=asn, tor_exit_list=tor)
    register_udfs(session, config, refresh=False)
    return session


@pytest.mark.spark
def test_every_bundled_case_passes(sample_session):
    rules, _ = _bundled()
    report, problems = run_rule_tests(sample_session, rules)
    assert problems == [] and report.untested == []
    assert report.failed == [], report.render()
    assert len(report.results) >= 2 * len(rules)


@pytest.mark.spark
def test_a_wrong_expectation_fails_with_what_was_raised(sample_session, tmp_path):
    rules, _ = _bundled()
    rule = next(r for r in rules if r.name == "root_console_login")
    copy = tmp_path / "root_console_login.sql"
    shutil.copy(rule.path, copy)
    cases = json.loads(sibling(rule).read_text())
    cases["cases"][0]["alerts"] = 2
    (tmp_path / "root_console_login.test.json").write_text(json.dumps(cases))
    copied, _ = load_rules([str(copy)])
    report, _ = run_rule_tests(sample_session, copied)
    assert [r.case for r in report.failed] == [cases["cases"][0]["name"]]
    assert "expected 2 alert(s), got 1" in report.failed[0].detail


# Stratus Red Team's recorded attacks (../shared/corpus/cloudtrail/stratus-red-team): the rule
# that must fire on each technique's events ...
STRATUS_FIRES = {
    "aws.defense-evasion.cloudtrail-delete": "cloudtrail_logging_tampered",
    "aws.defense-evasion.cloudtrail-event-selectors": "cloudtrail_logging_tampered",
    "aws.defense-evasion.cloudtrail-stop": "cloudtrail_logging_tampered",
    "aws.defense-evasion.dns-delete-logs": "dns_query_logging_deleted",
    "aws.defense-evasion.organizations-leave": "organization_leave_attempt",
    "aws.defense-evasion.vpc-remove-flow-logs": "vpc_flow_logs_deleted",
    "aws.execution.ec2-user-data": "ec2_user_data_modified",
    "aws.discovery.ec2-download-user-data": "unauthorized_api_calls_burst",
    "aws.credential-access.ec2-get-password-data": "unauthorized_api_calls_burst",
    "aws.credential-access.secretsmanager-retrieve-secrets": "secrets_bulk_read",
    "aws.credential-access.secretsmanager-batch-retrieve-secrets": "secrets_bulk_read",
    "aws.exfiltration.ec2-security-group-open-port-22-ingress": "security_group_opened_to_world",
    "aws.initial-access.console-login-without-mfa": "console_login_without_mfa",
    "aws.persistence.iam-backdoor-user": "iam_access_key_created",
    "aws.persistence.iam-create-admin-user": "iam_admin_policy_attached",
    "aws.persistence.iam-create-backdoor-role": "iam_admin_policy_attached",
    "aws.persistence.iam-create-user-login-profile": "login_profile_created_or_modified",
    "aws.privilege-escalation.iam-update-user-login-profile": "login_profile_created_or_modified",
    "aws.persistence.lambda-layer-extension": "lambda_layer_added",
}
# ... and look-alikes: sharing with one named account is exfiltration, but it is not "public"
STRATUS_QUIET = {
    "aws.exfiltration.ec2-share-ami": "ami_made_public",
    "aws.exfiltration.ec2-share-ebs-snapshot": "snapshot_made_public",
    "aws.exfiltration.rds-share-snapshot": "snapshot_made_public",
}


def _event_ids(technique: str) -> set[str]:
    path = corpus_dir("cloudtrail") / "stratus-red-team" / f"{technique}.json"
    data = json.loads(path.read_text())
    records = data["Records"] if isinstance(data, dict) else data
    return {r["eventID"] for r in records}


@pytest.fixture(scope="module")
def corpus_evaluations(spark, corpus_tables):
    """Every bundled rule over the real corpus (MaxMind's test databases, the corpus's Tor
    lists), as `detect` evaluates them: fused, and each rule alone (--no-fuse)."""
    from loader.engine.evaluate import cache_events, evaluate
    from loader.engine.plan import plan_rules

    geoip = corpus_dir("geoip") / "test-data"
    session = spark.newSession()
    config = EnrichmentConfig(
        geoip_city_db=str(geoip / "GeoIP2-City-Test.mmdb"),
        geoip_asn_db=str(geoip / "GeoLite2-ASN-Test.mmdb"),
        tor_exit_list=str(corpus_dir("tor")),
    )
    enrichment = register_udfs(session, config, refresh=False)
    events, _ = cache_events(session.table("corpus.cloudtrail"), None)
    rules, _ = _bundled()
    try:
        return {
            fuse: evaluate(plan_rules(rules, fuse), events, enrichment=enrichment)
            for fuse in (True, False)
        }
    finally:
        events.unpersist()


@pytest.fixture(scope="module")
def corpus_alerts(corpus_evaluations):
    """rule name -> its alert rows over the corpus (fused)."""
    by_rule: dict = {rule.name: [] for rule in _bundled()[0]}
    for alert in corpus_evaluations[True].alerts.collect():
        by_rule[alert.rule].append(alert)
    return by_rule


@pytest.mark.spark
def test_fused_and_alone_raise_the_same_alerts_on_the_corpus(corpus_evaluations):
    """The reference path (every rule alone, as written, UDFs per row) and the fused plan
    (one pass, lookups once per address, shared sub-expressions) agree exactly: same alert
    ids, same details, on real events with every quirk they have."""

    def rows(fuse):
        evaluation = corpus_evaluations[fuse]
        assert evaluation.errors == {}
        # the corpus reuses event ids ("1", "EID12345") across other projects' samples, so
        # some alerts share an id: order by the whole row
        return sorted(
            ({k: v for k, v in a.asDict().items() if k != "created_at"}
             for a in evaluation.alerts.collect()),
            key=lambda row: json.dumps(row, sort_keys=True, default=str),
        )  # fmt: skip

    fused, alone = rows(True), rows(False)
    assert len(fused) >= 20  # the corpus's attacks and its many principals and keys
    assert sorted(r["alert_id"] for r in fused) == sorted(r["alert_id"] for r in alone)
    assert fused == alone


@pytest.mark.spark
@pytest.mark.parametrize("technique", sorted(STRATUS_FIRES))
def test_each_recorded_attack_fires_its_rule(corpus_alerts, technique):
    rule = STRATUS_FIRES[technique]
    fired = {a.event_id for a in corpus_alerts[rule]}
    assert fired & _event_ids(technique), f"{rule} missed Stratus Red Team's {technique}"


@pytest.mark.spark
@pytest.mark.parametrize("technique", sorted(STRATUS_QUIET))
def test_look_alike_attacks_do_not_fire(corpus_alerts, technique):
    rule = STRATUS_QUIET[technique]
    assert not {a.event_id for a in corpus_alerts[rule]} & _event_ids(technique)


@pytest.mark.spark
def test_rules_on_the_corpus_keep_to_their_definition(corpus_alerts):
    details = {name: [json.loads(a.details) for a in rows] for name, rows in corpus_alerts.items()}
    # real root console sign-ins (AWS docs, attack simulations); root use covers them
    assert corpus_alerts["root_console_login"]
    assert all(a.entity.endswith(":root") for a in corpus_alerts["root_console_login"])
    root_use = {a.event_id for a in corpus_alerts["root_account_usage"]}
    assert {a.event_id for a in corpus_alerts["root_console_login"]} <= root_use
    tampering = {d["eventName"] for d in details["cloudtrail_logging_tampered"]}
    assert tampering == {"StopLogging", "DeleteTrail", "PutEventSelectors"}
    # IAM Identity Center's own SAML provider changes are not alerts; CloudFormation's are
    assert corpus_alerts["saml_provider_changed"]
    saml = corpus_alerts["saml_provider_changed"]
    assert not any("AWSServiceRoleForSSO" in a.entity for a in saml)
    # only world-wide CIDRs, never Panther's 0.0.0.0/16 or a /32
    assert {d["cidr"].split("/")[1] for d in details["security_group_opened_to_world"]} == {"0"}
    # exactly one public bucket policy in the corpus (Principal {"AWS": "*"}); the conditioned
    # Principal * and the CloudTrail service principal are look-alikes
    assert [d["eventName"] for d in details["s3_bucket_made_public"]] == ["PutBucketPolicy"]
    assert all(d["mfa_used"] == "No" for d in details["root_console_login"] if d["mfa_used"])
    # the 2015 account-wide profiles learn, then flag the corpus's many principals and keys
    assert corpus_alerts["new_principal_arn"] and corpus_alerts["new_access_key"]
    assert all(a.value.startswith("AKIA") for a in corpus_alerts["new_access_key"])


@pytest.mark.spark
def test_baselines_stay_quiet_on_the_corpus(corpus_alerts):
    """The corpus is samples from many sources and years: no principal in it has the steady
    week of history a baseline needs and then a departure, so none alerts (tuned that way)."""
    baselines = [rule.name for rule in _bundled()[0] if rule.kind == "baseline"]
    assert len(baselines) == 5
    assert {name: [a.title for a in corpus_alerts[name]] for name in baselines} == {
        name: [] for name in baselines
    }
