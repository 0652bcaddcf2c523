"""`enrich`: one row per distinct source address, looked up once; later runs scan only the
partitions with new files; changed databases or Tor lists recompute what they affect."""

from __future__ import annotations

import gzip
import json

import pytest

from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import TOR_EXIT_IP, SampleSpec, write_sample
from loader.tables.create_cloudtrail import create_cloudtrail_tables
from loader.tables.enrich import enrich
from udfs.spark import EnrichmentConfig, register_udfs

pytestmark = pytest.mark.spark
DB = "enrichtest"


def _sample_config(root, **overrides) -> EnrichmentConfig:
    paths = {key: str(root / relative) for key, relative in SAMPLE_FILES.items()}
    return EnrichmentConfig(**{**paths, **overrides})


def _new_log_file(logs, account: str, ip: str) -> None:
    folder = logs / "AWSLogs" / account / "CloudTrail" / "us-east-1" / "2024" / "04" / "01"
    folder.mkdir(parents=True)
    event = {
        "eventVersion": "1.08",
        "eventTime": "2024-04-01T09:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "eventID": "3a1d0d50-0000-4000-8000-000000000001",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:user/zoe"},
    }
    name = f"{account}_CloudTrail_us-east-1_20240401T0905Z_abcdefABCDEF0123.json.gz"
    (folder / name).write_bytes(gzip.compress(json.dumps({"Records": [event]}).encode()))


def _sql(spark, query: str):
    """Read in the test's own session, after sessions of other writers changed the tables."""
    for name in ("ip_enrichment", "cloudtrail_files"):
        spark.catalog.refreshTable(f"{DB}.{name}")
    return spark.sql(query)


def test_enrich_is_incremental_and_follows_source_changes(spark, tmp_path):
    logs = tmp_path / "logs"
    summary = write_sample(str(logs), SampleSpec(events=600, days=1))
    create_cloudtrail_tables(spark, str(logs / "AWSLogs"), DB)
    session = spark.newSession()
    enrichment = register_udfs(session, _sample_config(logs), refresh=False)

    first = enrich(session, DB, enrichment)
    distinct = spark.sql(f"SELECT count(DISTINCT sourceIPAddress) FROM {DB}.cloudtrail").first()[0]
    assert first.new_addresses == first.total == distinct > 5
    assert first.scanned.startswith("all events")
    facts = {r["ip"]: r for r in spark.table(f"{DB}.ip_enrichment").collect()}
    tor = facts[TOR_EXIT_IP]
    assert (tor.country, tor.country_code, tor.city, tor.asn, tor.is_tor) == (
        "Sweden", "SE", "Stockholm", 198093, True,
    )  # fmt: skip
    internal = facts["AWS Internal"]
    assert (internal.country, internal.asn, internal.is_tor) == (None, None, False)
    tor_events = spark.sql(
        f"SELECT DISTINCT sourceIPAddress FROM {DB}.cloudtrail_enriched WHERE is_tor"
    ).collect()
    assert [r[0] for r in tor_events] == [TOR_EXIT_IP]
    assert spark.table(f"{DB}.cloudtrail_enriched").count() == summary.events

    again = enrich(session, DB, enrichment)
    assert (again.new_addresses, again.scanned) == (0, "no new log files since the last enrich")

    _new_log_file(logs, summary.accounts[0], "89.160.20.201")
    create_cloudtrail_tables(spark, str(logs / "AWSLogs"), DB)
    later = enrich(session, DB, enrichment)
    assert later.new_addresses == 1 and later.total == distinct + 1
    assert later.scanned == "1 partitions with 1 new log files"
    added = _sql(spark, f"SELECT city FROM {DB}.ip_enrichment WHERE ip = '89.160.20.201'").first()
    assert added.city == "Linköping"

    # a new Tor list recomputes is_tor only; new GeoIP databases recompute everything
    other_list = tmp_path / "torbulkexitlist_2024-04-02.txt"
    other_list.write_text("89.160.20.201\n")
    retor = spark.newSession()
    tor_only = register_udfs(
        retor, _sample_config(logs, tor_exit_list=str(other_list)), refresh=False
    )
    changed = enrich(retor, DB, tor_only)
    assert changed.recomputed.startswith("is_tor of all addresses")
    flags = dict(_sql(spark, f"SELECT ip, is_tor FROM {DB}.ip_enrichment").collect())
    assert flags["89.160.20.201"] is True and flags[TOR_EXIT_IP] is False
    assert len(flags) == distinct + 1

    geo_less = spark.newSession()
    asn_only = register_udfs(
        geo_less,
        EnrichmentConfig(geoip_asn_db=str(logs / SAMPLE_FILES["geoip_asn_db"])),
        refresh=False,
    )
    regeo = enrich(geo_less, DB, asn_only)
    assert regeo.recomputed.startswith("all addresses")
    row = _sql(spark, f"SELECT * FROM {DB}.ip_enrichment WHERE ip = '{TOR_EXIT_IP}'").first()
    assert (row.country, row.asn, row.is_tor) == (None, 198093, None)
