"""The runner's state, batch by batch, raises exactly the alerts `detect` raises over the whole
history at once: every bundled rule over a generated history with the attack story, cut into
micro-batches in time order."""

from __future__ import annotations

import hashlib

import pytest

from loader.enrichment import SAMPLE_FILES
from loader.rules.evaluate import rule_alerts
from loader.rules.validate import load_valid_rules
from loader.sample.generate import SampleSpec, write_sample
from loader.stream.state import apply_rule
from udfs.spark import EnrichmentConfig, register_udfs

pytestmark = pytest.mark.spark


def _alert_id(rule: str, event_id, entity, value) -> str:
    parts = [rule, event_id or "", entity or "", value or ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@pytest.fixture(scope="module")
def story(spark, tmp_path_factory):
    from loader.rules.detect import source_events

    logs = tmp_path_factory.mktemp("state_story")
    write_sample(str(logs), SampleSpec(events=2500, days=21))
    session = spark.newSession()
    config = EnrichmentConfig(
        geoip_city_db=str(logs / SAMPLE_FILES["geoip_city_db"]),
        geoip_asn_db=str(logs / SAMPLE_FILES["geoip_asn_db"]),
        tor_exit_list=str(logs / SAMPLE_FILES["tor_exit_list"]),
    )
    register_udfs(session, config, refresh=False)
    source_events(session, str(logs / "AWSLogs")).cache().createOrReplaceTempView("cloudtrail")
    return session


def test_state_batch_by_batch_equals_detect(story):
    batches, total = 7, 0
    rules = load_valid_rules([])
    for rule in rules:
        expected = {a.alert_id for a in rule_alerts(story, rule).collect()}
        rows = [r.asDict() for r in story.sql(rule.sql).collect() if r.eventTime is not None]
        rows.sort(key=lambda r: (r["eventTime"], r["eventID"]))
        store: dict = {}
        got = set()
        size = -(-len(rows) // batches) or 1
        for start in range(0, len(rows), size):
            for row, value, _ in apply_rule(rule, rows[start : start + size], store):
                entity_column = rule.values.get("entity")
                entity = row.get(entity_column) if entity_column else None
                got.add(_alert_id(rule.name, row["eventID"], entity, value))
        assert got == expected, f"{rule.name}: {len(got)} alerts batch by batch, {len(expected)}"
        total += len(expected)
    assert total >= 26  # at least the attack story's alerts
