"""GeoIP lookups against MaxMind's own test databases and the JSON they were built from, and
every corrupt database refused at start with a message naming it. No JVM."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from loader.errors import UdfError
from tests.corpus import corpus_dir
from udfs.geoip import ASN, CITY, COUNTRY, GeoReader, check_database
from udfs.ip import public_ip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("81.2.69.142", "81.2.69.142"),
        ("81.2.69.142, 192.168.10.10", "81.2.69.142"),
        (" 2001:218::1 ", "2001:218::1"),
        ("::ffff:81.2.69.142", "81.2.69.142"),
        ("[2001:218::1]", "2001:218::1"),
        ("AWS Internal", None),
        ("config.amazonaws.com", None),
        ("", None),
        (None, None),
        ("08.1.250.216", None),
        ("10.1.2.3", None),
        ("192.168.10.10, 81.2.69.142", None),  # the client is the first address
        ("127.0.0.1", None),
        ("192.0.2.10", None),  # documentation range, as in AWS's examples
        ("fe80::1%eth0", None),
        ("999.1.1.1", None),
    ],
)
def test_only_public_addresses_are_looked_up(raw, expected):
    assert public_ip(raw) == expected


def _networks(source: Path) -> list[tuple[ipaddress._BaseNetwork, dict]]:
    """MaxMind source JSON as (network, record); '::a.b.c.d/120' is IPv4 a.b.c.d/24."""
    result = []
    for entry in json.loads(source.read_text()):
        for cidr, record in entry.items():
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version == 6 and net.subnet_of(ipaddress.ip_network("::/96")):
                net = ipaddress.ip_network(
                    (ipaddress.IPv4Address(int(net.network_address)), net.prefixlen - 96)
                )
            result.append((net, record))
    return result


def _expected_for(address, networks):
    """The record of the most specific network holding ``address``, as the tree answers."""
    holding = [(n, r) for n, r in networks if n.version == address.version and address in n]
    return max(holding, key=lambda item: item[0].prefixlen)[1]


def _probe_addresses(networks):
    for net, _ in networks:
        for address in (net.network_address, net.broadcast_address):
            if public_ip(str(address)):
                yield address


@pytest.mark.parametrize(
    ("database", "source", "role"),
    [
        ("GeoIP2-City-Test.mmdb", "GeoIP2-City-Test.json", CITY),
        ("GeoLite2-City-Test.mmdb", "GeoLite2-City-Test.json", CITY),
        ("GeoIP2-Country-Test.mmdb", "GeoIP2-Country-Test.json", COUNTRY),
        ("GeoLite2-Country-Test.mmdb", "GeoLite2-Country-Test.json", COUNTRY),
        ("GeoLite2-ASN-Test.mmdb", "GeoLite2-ASN-Test.json", ASN),
    ],
)
def test_lookups_match_maxmind_source_data(database, source, role):
    geoip = corpus_dir("geoip")
    info = check_database(str(geoip / "test-data" / database), role)
    reader = GeoReader(info.path, role.name)
    networks = _networks(geoip / "source-data" / source)
    checked = 0
    for address in _probe_addresses(networks):
        record = _expected_for(address, networks)
        if role is ASN:
            expected = (
                record.get("autonomous_system_number"),
                record.get("autonomous_system_organization"),
            )
        else:
            country = record.get("country", {})
            expected = (
                country.get("names", {}).get("en"),
                country.get("iso_code"),
                record.get("city", {}).get("names", {}).get("en") if role is CITY else None,
            )
        assert reader.values(str(address)) == expected, (database, str(address))
        checked += 1
    assert checked >= 100  # the databases hold hundreds of networks; most are public


def test_well_known_test_addresses():
    geoip = corpus_dir("geoip") / "test-data"
    city = GeoReader(str(geoip / "GeoIP2-City-Test.mmdb"), "city")
    asn = GeoReader(str(geoip / "GeoLite2-ASN-Test.mmdb"), "asn")
    assert city.values("81.2.69.142, 192.168.10.10") == ("United Kingdom", "GB", "London")
    assert city.values("216.160.83.56") == ("United States", "US", "Milton")
    assert city.values("2001:218::1") == ("Japan", "JP", None)
    assert city.values("AWS Internal") == (None, None, None)
    assert asn.values("1.128.0.1") == (1221, "Telstra Pty Ltd")
    assert asn.values("08.1.250.216") == (None, None)


def _bad_databases() -> list[Path]:
    geoip = corpus_dir("geoip")
    broken = [
        "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ]
    return sorted((geoip / "bad-data").rglob("*.mmdb")) + [geoip / "test-data" / b for b in broken]


def test_every_corrupt_database_is_refused_with_its_name():
    bad = _bad_databases()
    assert len(bad) == 25
    reasons = {}
    for path in bad:
        with pytest.raises(UdfError) as caught:
            check_database(str(path), CITY)
        message = str(caught.value)
        assert message.startswith(f"--geoip-city-db {path}: "), message
        reasons[path.name] = message.split(": ", 1)[1]
    # the structurally corrupt ones are caught by the check itself, not by the type test
    structural = [r for r in reasons.values() if "cannot give" not in r]
    assert len(structural) >= 22, reasons
    assert "corrupt search tree" in reasons["libmaxminddb-corrupt-search-tree.mmdb"]
    assert "build_epoch" in reasons["libmaxminddb-uint64-max-epoch.mmdb"]
    assert "cannot be decoded" in reasons["libmaxminddb-deep-nesting.mmdb"]


def test_missing_or_wrong_kind_of_database_is_a_clear_error(tmp_path):
    geoip = corpus_dir("geoip") / "test-data"
    with pytest.raises(UdfError, match=r"--geoip-asn-db .*nope.mmdb: file not found"):
        check_database(str(tmp_path / "nope.mmdb"), ASN)
    with pytest.raises(UdfError, match=r"'GeoLite2-ASN' database cannot give geoip_country"):
        check_database(str(geoip / "GeoLite2-ASN-Test.mmdb"), CITY)
    text = tmp_path / "GeoLite2-City.mmdb"
    text.write_text("<html>404 Not Found</html>")
    with pytest.raises(UdfError, match="not a valid MaxMind DB file"):
        check_database(str(text), CITY)
    # a City database may serve the country functions
    city_as_country = check_database(str(geoip / "GeoIP2-City-Test.mmdb"), COUNTRY)
    assert city_as_country.database_type == "GeoIP2-City"


def test_database_from_s3_is_fetched_once_into_the_cache(moto_server, tmp_path, monkeypatch):
    import os

    import boto3

    from udfs.sources import local_copy

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = corpus_dir("geoip") / "test-data" / "GeoLite2-ASN-Test.mmdb"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="geoip-dbs")
    s3.put_object(Bucket="geoip-dbs", Key="asn/GeoLite2-ASN.mmdb", Body=source.read_bytes())
    url = "s3://geoip-dbs/asn/GeoLite2-ASN.mmdb"
    first = local_copy(url, "--geoip-asn-db")
    assert first.startswith(str(tmp_path / "cache")) and first.endswith("-GeoLite2-ASN.mmdb")
    stamp = os.stat(first).st_mtime_ns
    assert local_copy(url, "--geoip-asn-db") == first and os.stat(first).st_mtime_ns == stamp
    assert check_database(first, ASN, shown_as=url).database_type == "GeoLite2-ASN"
    with pytest.raises(UdfError, match=r"--geoip-asn-db s3://geoip-dbs/nope.mmdb: cannot fetch"):
        local_copy("s3://geoip-dbs/nope.mmdb", "--geoip-asn-db")
