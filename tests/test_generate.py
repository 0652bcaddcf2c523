"""Fast tier: the sample generator's layout, determinism and attack story."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from loader.sample.attack import ATTACK_NEW_USER, ATTACK_USER, ENUMERATION_CALLS
from loader.sample.catalog import ATTACKER_IPS, TOR_EXIT_IP
from loader.sample.generate import SampleSpec, write_sample
from loader.sources.layout import place

FILE_NAME = r"^\d{12}_CloudTrail_[a-z0-9-]+_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$"


def read_all(root: Path) -> dict[str, list[dict]]:
    return {
        str(p.relative_to(root)): json.loads(gzip.decompress(p.read_bytes()))["Records"]
        for p in sorted(root.rglob("*.json.gz"))
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    summary = write_sample(
        str(root), SampleSpec(events=4000, days=4, accounts=3, seed=11, events_per_file=300)
    )
    return root, summary, read_all(root)


def test_layout_names_and_counts(sample):
    import re

    root, summary, files = sample
    assert summary.events == 4000 == sum(len(r) for r in files.values())
    assert summary.files == len(files)
    assert len(summary.accounts) == 3
    for rel, records in files.items():
        placed = place(str(root / rel))
        assert placed.kind == "cloudtrail"
        assert re.match(FILE_NAME, placed.name), placed.name
        assert len(records) <= 300
        assert {r["recipientAccountId"] for r in records} == {placed.account}
        assert {r["eventTime"][:10] for r in records} == {placed.dt}
        assert {r["awsRegion"] for r in records if r["eventName"] != "ConsoleLogin"} <= {
            placed.region
        }


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    spec = SampleSpec(events=500, days=2, seed=5)
    write_sample(str(tmp_path / "a"), spec)
    write_sample(str(tmp_path / "b"), spec)
    write_sample(str(tmp_path / "c"), SampleSpec(events=500, days=2, seed=6))
    a, b, c = (read_all(tmp_path / x) for x in "abc")
    assert a == b
    assert list(a) != list(c)
    first = sorted((tmp_path / "a").rglob("*.gz"))[0]
    assert first.read_bytes() == (tmp_path / "b" / first.relative_to(tmp_path / "a")).read_bytes()


def test_realistic_mix(sample):
    _, _, files = sample
    events = [e for records in files.values() for e in records]
    types = {e["userIdentity"]["type"] for e in events}
    assert {"IAMUser", "AssumedRole", "Root"} <= types
    assert any(e["sourceIPAddress"] == "AWS Internal" for e in events)
    assert any(e["sourceIPAddress"].endswith(".amazonaws.com") for e in events)
    logins = [e for e in events if e["eventName"] == "ConsoleLogin"]
    assert {e["additionalEventData"]["MFAUsed"] for e in logins} == {"Yes", "No"}
    errors = sum(1 for e in events if e.get("errorCode") == "AccessDenied")
    assert 0.005 < errors / len(events) < 0.05
    assert len({e["sourceIPAddress"] for e in events}) < 40  # IPs are reused, as in life
    assert any(isinstance(e.get("requestParameters"), dict) for e in events)


def test_attack_story_on_the_last_day(sample):
    _, summary, files = sample
    last_day = summary.days[-1]
    events = [e for records in files.values() for e in records]
    story = [e for e in events if e["sourceIPAddress"] in (*ATTACKER_IPS, TOR_EXIT_IP)]
    assert len(story) == summary.attack_events == 12 + ENUMERATION_CALLS
    assert {e["eventTime"][:10] for e in story} == {last_day}
    user = lambda e: e["userIdentity"].get("userName")  # noqa: E731
    assert any(user(e) == ATTACK_USER and e["sourceIPAddress"] in ATTACKER_IPS for e in story)
    assert any(user(e) == ATTACK_USER and e["sourceIPAddress"] == TOR_EXIT_IP for e in story)
    # before the attack dave only ever used office addresses
    earlier = {e["sourceIPAddress"] for e in events if user(e) == ATTACK_USER and e not in story}
    assert earlier and not earlier & {*ATTACKER_IPS, TOR_EXIT_IP}
    root_login = [e for e in story if e["eventName"] == "ConsoleLogin"]
    assert root_login[0]["userIdentity"]["type"] == "Root"
    assert root_login[0]["additionalEventData"]["MFAUsed"] == "No"
    assert any(e["eventName"] == "StopLogging" for e in story)
    key = next(e for e in story if e["eventName"] == "CreateAccessKey")
    new_key = key["responseElements"]["accessKey"]["accessKeyId"]
    assert new_key.startswith("AKIA")
    used = [e for e in story if e["userIdentity"].get("accessKeyId") == new_key]
    assert used and all(user(e) == ATTACK_NEW_USER for e in used)


def test_sample_geoip_and_tor_files_cover_every_address_the_sample_uses(sample, tmp_path):
    from loader.enrichment import SAMPLE_FILES
    from udfs.geoip import ASN, CITY, GeoReader, check_database
    from udfs.ip import public_ip
    from udfs.tor import TorExitList

    root, summary, files = sample
    city = GeoReader(check_database(str(root / SAMPLE_FILES["geoip_city_db"]), CITY).path, "city")
    asn = GeoReader(check_database(str(root / SAMPLE_FILES["geoip_asn_db"]), ASN).path, "asn")
    used = {r["sourceIPAddress"] for records in files.values() for r in records}
    public = {ip for ip in used if public_ip(ip)}
    assert public and "AWS Internal" in used
    for ip in public:
        country, code, _ = city.values(ip)
        number, org = asn.values(ip)
        assert country and code and number and org, ip
    assert city.values(ATTACKER_IPS[0])[:2] == ("China", "CN")
    exits = TorExitList(str(root / SAMPLE_FILES["tor_exit_list"]))
    exits.refresh()
    index = exits.index()
    assert [ip for ip in public if index.is_exit(ip)] == [TOR_EXIT_IP]
    assert exits.snapshots[0].time.date().isoformat() == summary.days[-1]
    # same bytes for the same arguments, like the logs
    write_sample(
        str(tmp_path / "again"),
        SampleSpec(events=4000, days=4, accounts=3, seed=11, events_per_file=300),
    )
    for relative in SAMPLE_FILES.values():
        assert (root / relative).read_bytes() == (tmp_path / "again" / relative).read_bytes()
