"""GeoIP databases and a Tor exit list to go with the sample, so `demo` shows countries,
networks and Tor use without a MaxMind licence.

The databases are real MaxMind DB files (written with mmdb-writer) in the shape of GeoLite2
City and ASN records, covering only the networks the sample's actors use. Their type names say
"tsa-sample", and their build time is the sample's last day, so the files are byte-identical
for the same arguments.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from loader.sample.catalog import ATTACKER_IPS, DEFAULT_END, OFFICE_IPS, TOR_EXIT_IP

# network -> (ISO code, country, city or None, AS number, AS organization)
NETWORKS = {
    "216.160.83.0/24": ("US", "United States", "Milton", 209, "CenturyLink Communications"),
    "214.78.0.0/16": ("US", "United States", None, 721, "DoD Network Information Center"),
    "81.2.69.0/24": ("GB", "United Kingdom", "London", 20712, "Andrews & Arnold Ltd"),
    "2.125.160.0/24": ("GB", "United Kingdom", "Boxford", 5607, "Sky UK Limited"),
    "89.160.20.0/24": ("SE", "Sweden", "Linköping", 29518, "Bredband2 AB"),
    "175.16.199.0/24": ("CN", "China", "Changchun", 4837, "CHINA UNICOM China169 Backbone"),
    "171.25.193.0/24": ("SE", "Sweden", "Stockholm", 198093, "Foreningen for digitala fri"),
}
# Other relays of the list: realistic neighbours, none of them used by the sample's actors.
OTHER_EXITS = ("185.220.101.1", "185.220.101.33", "199.249.230.87", "204.8.156.142")
CITY_FILE = os.path.join("geoip", "tsa-sample-City.mmdb")
ASN_FILE = os.path.join("geoip", "tsa-sample-ASN.mmdb")
TOR_FILE = os.path.join("tor", "exit-addresses")


def _covered() -> None:
    """Every address the sample uses falls in a network above (checked by the tests too)."""
    import ipaddress

    used = [ip for ips in OFFICE_IPS.values() for ip in ips] + ATTACKER_IPS + [TOR_EXIT_IP]
    nets = [ipaddress.ip_network(n) for n in NETWORKS]
    missing = [ip for ip in used if not any(ipaddress.ip_address(ip) in n for n in nets)]
    assert not missing, missing


def _write_mmdb(
    path: str, database_type: str, records: dict[str, dict[str, Any]], epoch: int
) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    class _Writer(MMDBWriter):
        def _build_meta(self) -> dict[str, Any]:
            return {**super()._build_meta(), "build_epoch": epoch}  # deterministic bytes

    writer = _Writer(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description="timely-security-analytics sample data, not MaxMind data",
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer.to_db_file(path)


def _city_record(code: str, country: str, city: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {"country": {"iso_code": code, "names": {"en": country}}}
    if city:
        record["city"] = {"names": {"en": city}}
    return record


def _exit_list(day: dt.date) -> str:
    stamp = f"{day:%Y-%m-%d} 23:00:00"
    lines = ["@type tordnsel 1.0", f"Downloaded {stamp}"]
    for number, ip in enumerate((TOR_EXIT_IP, *OTHER_EXITS)):
        lines += [
            f"ExitNode {number:040X}",
            f"Published {day:%Y-%m-%d} 01:00:00",
            f"LastStatus {day:%Y-%m-%d} 22:00:00",
            f"ExitAddress {ip} {day:%Y-%m-%d} 22:30:00",
        ]
    return "\n".join(lines) + "\n"


def write_enrichment_data(out: str, last_day: dt.date | None = None) -> list[str]:
    """Write the sample's GeoIP databases and Tor list under ``out``; returns their paths.
    ``last_day`` dates the files (default: the sample's default last day)."""
    _covered()
    last_day = last_day or dt.date.fromisoformat(DEFAULT_END)
    epoch = int(dt.datetime.combine(last_day, dt.time(), dt.timezone.utc).timestamp())
    cities = {net: _city_record(*facts[:3]) for net, facts in NETWORKS.items()}
    networks = {
        net: {"autonomous_system_number": facts[3], "autonomous_system_organization": facts[4]}
        for net, facts in NETWORKS.items()
    }
    _write_mmdb(os.path.join(out, CITY_FILE), "tsa-sample-City", cities, epoch)
    _write_mmdb(os.path.join(out, ASN_FILE), "tsa-sample-ASN", networks, epoch)
    tor = os.path.join(out, TOR_FILE)
    os.makedirs(os.path.dirname(tor), exist_ok=True)
    with open(tor, "w", encoding="utf-8") as handle:
        handle.write(_exit_list(last_day))
    return [os.path.join(out, p) for p in (CITY_FILE, ASN_FILE, TOR_FILE)]
