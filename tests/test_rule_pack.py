"""The bundled rules: valid, each with sibling cases that must fire and must not, all passing,
and every rule running over the real corpus events without error."""

from __future__ import annotations

import json
import shutil

import pytest

from loader.rules.ruletests import load_cases, run_rule_tests, sibling
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


@pytest.mark.spark
def test_every_bundled_rule_runs_over_the_real_corpus(spark, corpus_tables):
    from loader.rules.evaluate import rule_alerts

    geoip = corpus_dir("geoip") / "test-data"
    session = spark.newSession()
    config = EnrichmentConfig(
        geoip_city_db=str(geoip / "GeoIP2-City-Test.mmdb"),
        geoip_asn_db=str(geoip / "GeoLite2-ASN-Test.mmdb"),
        tor_exit_list=str(corpus_dir("tor")),
    )
    register_udfs(session, config, refresh=False)
    session.table("corpus.cloudtrail").createOrReplaceTempView("cloudtrail")
    rules, _ = _bundled()
    raised = {rule.name: rule_alerts(session, rule).collect() for rule in rules}
    # the corpus holds real root console sign-ins (AWS docs, attack simulations)
    assert raised["root_console_login"]
    assert all(a.entity and a.entity.endswith(":root") for a in raised["root_console_login"])
    # Stratus Red Team's and the docs' StopLogging/DeleteTrail, and LeaveOrganization calls
    tampering = [json.loads(a.details)["eventName"] for a in raised["cloudtrail_logging_tampered"]]
    assert tampering and set(tampering) <= {"StopLogging", "DeleteTrail", "PutEventSelectors"}
    assert raised["organization_leave_attempt"]
