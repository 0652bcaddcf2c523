"""The UDFs inside Spark: the same answers as the plain lookups on real CloudTrail events, the
configured files deciding which functions exist, damaged databases refused before any task,
time zones respected, and the Tor list refreshed in a running session."""

from __future__ import annotations

import os
import time

import pytest

from loader.errors import UdfError
from tests.corpus import corpus_dir
from udfs import UDF_NAMES
from udfs.geoip import GeoReader
from udfs.spark import EnrichmentConfig, register_udfs
from udfs.tor import TorExitList

pytestmark = pytest.mark.spark

SELECT_ALL = """
SELECT sourceIPAddress AS ip, eventTime,
       geoip_country(sourceIPAddress) AS country, geoip_country_code(sourceIPAddress) AS code,
       geoip_city(sourceIPAddress) AS city, geoip_asn(sourceIPAddress) AS asn,
       geoip_asn_org(sourceIPAddress) AS asn_org, is_tor_exit(sourceIPAddress) AS tor,
       is_tor_exit_at(sourceIPAddress, eventTime) AS tor_then
FROM {table}
"""


@pytest.fixture(scope="module")
def corpus_session(spark):
    """A session of its own (UDFs are per session) with MaxMind's test databases and every
    corpus Tor list."""
    geoip = corpus_dir("geoip") / "test-data"
    session = spark.newSession()
    enrichment = register_udfs(
        session,
        EnrichmentConfig(
            geoip_city_db=str(geoip / "GeoIP2-City-Test.mmdb"),
            geoip_asn_db=str(geoip / "GeoLite2-ASN-Test.mmdb"),
            tor_exit_list=str(corpus_dir("tor")),
        ),
        refresh=False,
    )
    return session, enrichment


def test_udfs_on_real_events_match_the_plain_lookups(corpus_session, corpus_tables):
    session, enrichment = corpus_session
    assert enrichment.functions == list(UDF_NAMES)  # every documented name, in order
    rows = session.sql(SELECT_ALL.format(table="corpus.cloudtrail")).collect()
    assert len(rows) == corpus_tables[1].events
    geoip = corpus_dir("geoip") / "test-data"
    city = GeoReader(str(geoip / "GeoIP2-City-Test.mmdb"), "city")
    asn = GeoReader(str(geoip / "GeoLite2-ASN-Test.mmdb"), "asn")
    tor = TorExitList(str(corpus_dir("tor")))
    tor.refresh()
    index = tor.index()
    for row in rows:
        then = row["eventTime"].timestamp() if row["eventTime"] else None
        expected = (
            *city.values(row["ip"]),
            *asn.values(row["ip"]),
            index.is_exit(row["ip"]),
            index.is_exit_at(row["ip"], then),
        )
        assert tuple(row)[2:] == expected, row["ip"]
    # the corpus's quirks: service names, leading-zero quads, documentation and private ranges
    quirks = {"AWS Internal", "253.252.51.07", "035.249.253.232", "192.0.2.0", "10.0.1.100"}
    quirky = [r for r in rows if r["ip"] in quirks]
    assert len(quirky) > 100
    assert all(r["country"] is None and r["asn"] is None and r["tor"] is False for r in quirky)


def test_literal_addresses_through_sql(corpus_session):
    session, _ = corpus_session
    row = session.sql(
        "SELECT geoip_country('2001:218::1') AS v6, geoip_asn('1.128.0.1') AS asn, "
        "geoip_city('config.amazonaws.com') AS host, is_tor_exit('171.25.193.25') AS tor, "
        "is_tor_exit_at('171.25.193.25', timestamp'2023-10-14 09:00:00') AS tor_then, "
        "is_tor_exit_at('171.25.193.25', timestamp'2019-06-01 00:00:00') AS unknown"
    ).first()
    assert row.asDict() == {
        "v6": "Japan", "asn": 1221, "host": None, "tor": True, "tor_then": True, "unknown": None,
    }  # fmt: skip


def test_configured_files_decide_the_functions(spark):
    geoip = corpus_dir("geoip") / "test-data"
    session = spark.newSession()
    only_country = register_udfs(
        session, EnrichmentConfig(geoip_country_db=str(geoip / "GeoLite2-Country-Test.mmdb"))
    )
    assert only_country.functions == ["geoip_country", "geoip_country_code"]
    assert session.sql("SELECT geoip_country_code('81.2.69.142')").first()[0] == "GB"
    with pytest.raises(Exception, match="geoip_city"):
        session.sql("SELECT geoip_city('81.2.69.142')").collect()


def test_damaged_database_is_refused_before_any_task(spark):
    bad = corpus_dir("geoip") / "bad-data" / "libmaxminddb" / "libmaxminddb-deep-nesting.mmdb"
    session = spark.newSession()
    with pytest.raises(UdfError, match=rf"--geoip-city-db {bad}: data record .* nests|decoded"):
        register_udfs(session, EnrichmentConfig(geoip_city_db=str(bad)))
    with pytest.raises(UdfError, match="file not found"):
        register_udfs(session, EnrichmentConfig(geoip_asn_db="/nonexistent/GeoLite2-ASN.mmdb"))


def test_is_tor_exit_at_reads_timestamps_in_the_session_time_zone(corpus_session, spark):
    tor = corpus_dir("tor")
    exits = TorExitList(str(tor))
    exits.refresh()
    by_origin = {s.origin: s.addresses for s in exits.snapshots}
    nov1 = by_origin[str(tor / "collector-exit-list_2018-11-01-00-02-01.tordnsel")]
    nov2 = by_origin[str(tor / "collector-exit-list_2018-11-02-01-02-01.tordnsel")]
    gone = sorted(nov1 - nov2 - exits.snapshots[-1].addresses)[0]
    query = f"SELECT is_tor_exit_at('{gone}', timestamp'2018-10-30 21:00:00')"
    utc_session, _ = corpus_session
    new_york = spark.newSession()
    new_york.conf.set("spark.sql.session.timeZone", "America/New_York")
    register_udfs(new_york, EnrichmentConfig(tor_exit_list=str(tor)), refresh=False)
    # 21:00 in New York is 01:00 UTC the next day: within a day of the Nov 1 list
    assert new_york.sql(query).first()[0] is True
    assert utc_session.sql(query).first()[0] is None  # 21:00 UTC: no list within a day


def test_tor_list_is_refreshed_in_a_running_session(spark, tmp_path):
    exit_list = tmp_path / "torbulkexitlist"
    exit_list.write_text("171.25.193.25\n")
    session = spark.newSession()
    enrichment = register_udfs(
        session, EnrichmentConfig(tor_exit_list=str(exit_list), tor_refresh_seconds=0.5)
    )
    query = "SELECT is_tor_exit('185.220.101.1')"
    try:
        assert session.sql(query).first()[0] is False
        exit_list.write_text("171.25.193.25\n185.220.101.1\n")
        os.utime(exit_list, (time.time() + 60, time.time() + 60))  # a newer list
        deadline = time.monotonic() + 30
        while session.sql(query).first()[0] is not True:
            assert time.monotonic() < deadline, "the refresh thread did not pick up the list"
            time.sleep(0.5)
    finally:
        enrichment.stop()
    assert len(enrichment.tor.snapshots) == 2
