"""create-hive-table on every real CloudTrail file of the corpus, laid out as in S3."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def test_every_event_loads(spark, corpus_tables):
    _, expected, report = corpus_tables
    assert expected.events > 1000
    assert spark.table("corpus.cloudtrail").count() == expected.events
    assert report.events_new == expected.events


def test_events_per_file_match_json_module(spark, corpus_tables):
    _, expected, _ = corpus_tables
    rows = spark.sql(
        "SELECT source_file, count(*) AS n FROM corpus.cloudtrail GROUP BY source_file"
    ).collect()
    from urllib.parse import unquote, urlparse

    counted = {unquote(urlparse(r["source_file"]).path): r["n"] for r in rows}
    assert counted == {path: n for path, n in expected.by_path.items() if n}


def test_insights_go_to_their_own_view(spark, corpus_tables):
    _, expected, report = corpus_tables
    insights = spark.table("corpus.cloudtrail_insights")
    assert expected.insight_events == 10
    assert insights.count() == expected.insight_events
    assert report.insight_events_new == expected.insight_events
    states = {r[0] for r in insights.select("insightDetails.state").collect()}
    assert states == {"Start", "End"}
    leaked = spark.sql(
        "SELECT count(*) FROM corpus.cloudtrail WHERE eventType = 'AwsCloudTrailInsight'"
    ).first()[0]
    assert leaked == 0


def test_invalid_file_is_quarantined_with_reason(spark, corpus_tables):
    _, expected, report = corpus_tables
    assert len(expected.invalid) == 1
    rows = spark.table("corpus.cloudtrail_quarantine").collect()
    assert [r["path"] for r in rows] == expected.invalid
    import gzip
    import json

    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(gzip.decompress(open(expected.invalid[0], "rb").read()))
    assert rows[0]["reason"] == (
        f"invalid JSON: {err.value.msg} at line {err.value.lineno} column {err.value.colno}"
    )
    assert report.quarantined_new == [(expected.invalid[0], rows[0]["reason"])]


def test_digests_are_recorded_not_loaded(spark, corpus_tables):
    _, expected, report = corpus_tables
    assert report.digests_new == len(expected.digests) == 2
    rows = spark.sql(
        "SELECT path, status, events FROM corpus.cloudtrail_files WHERE kind = 'digest'"
    ).collect()
    assert sorted(r["path"] for r in rows) == sorted(expected.digests)
    assert {(r["status"], r["events"]) for r in rows} == {("skipped", 0)}


def test_real_world_quirks_are_typed(spark, corpus_tables):
    df = spark.table("corpus.cloudtrail")
    # absent or null userIdentity is a NULL struct, not a lost event
    assert df.where("userIdentity IS NULL").count() >= 10
    # sourceIPAddress keeps service names and 'AWS Internal' as they are
    ips = {r[0] for r in df.select("sourceIPAddress").distinct().collect()}
    assert "AWS Internal" in ips
    assert any(ip and ip.endswith(".amazonaws.com") for ip in ips)
    # real logs have ISO-8601 times with Z; Panther exports have 'YYYY-MM-DD HH:MM:SS.fff'
    zoneless = df.where(
        "get_json_object(raw_json, '$.eventTime') RLIKE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}'"
    )
    assert zoneless.count() > 0
    assert zoneless.where("eventTime IS NULL").count() == 0
    # placeholders such as "eventTime" or "redacted" become NULL instead of failing the query
    junk = df.where("get_json_object(raw_json, '$.eventTime') NOT RLIKE '^[0-9]{4}-'")
    assert junk.count() >= 3
    assert junk.where("eventTime IS NOT NULL").count() == 0
    # booleans as JSON booleans and as strings both become BOOLEAN
    types = dict(df.dtypes)
    assert types["readOnly"] == "boolean"
    assert types["eventTime"] == "timestamp"
    assert types["requestParameters"] == "string"
    string_bools = df.where('raw_json RLIKE \'"readOnly": *"(?i)(true|false)"\'')
    assert string_bools.count() > 0
    assert string_bools.where("readOnly IS NULL").count() == 0
    # principal: the ARN, else the principal id (empty ARNs of real events count as none)
    import json

    rows = df.select("raw_json", "principal").collect()
    for raw, principal in rows:
        identity = json.loads(raw).get("userIdentity") or {}
        identity = identity if isinstance(identity, dict) else {}
        assert principal == (identity.get("arn") or identity.get("principalId")), raw[:200]
    kinds = {principal.split(":")[0] if principal else None for _, principal in rows}
    assert "arn" in kinds and None in kinds and len(kinds) > 2  # ids as well as ARNs


def test_org_trail_and_partitions(spark, corpus_tables):
    root, _, report = corpus_tables
    partitions = spark.sql("SHOW PARTITIONS corpus.cloudtrail_raw").count()
    assert partitions == sum(1 for p in report.partitions_added if p[0] == "cloudtrail_raw")
    org_events = spark.sql(
        "SELECT count(*) FROM corpus.cloudtrail WHERE source_file LIKE '%/AWSLogs/o-a1b2c3d4e5/%'"
    ).first()[0]
    assert org_events > 0
