"""GeoIP lookups over MaxMind databases (GeoLite2/GeoIP2 City, Country and ASN).

Which SQL functions exist depends on the databases given: a City database answers
``geoip_country``, ``geoip_country_code`` and ``geoip_city``; a Country database answers the
first two (and is preferred for them when both are given); an ASN (or ISP) database answers
``geoip_asn`` and ``geoip_asn_org``. Lookups read the databases with MaxMind's reader (the C
extension that ``geoip2`` uses) and return plain values; anything that is not a public IP gives
``None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from loader.errors import UdfError
from udfs.ip import public_ip
from udfs.mmdb_check import MmdbProblem, build_date, check_mmdb

LANGUAGE = "en"
CACHE_LIMIT = 1 << 20  # distinct sourceIPAddress values remembered per worker and database


@dataclass(frozen=True)
class Role:
    """What a configured database is for: the flag that gives it, the database types that
    can serve it, and the SQL functions it provides with the field each returns."""

    name: str
    flag: str
    accepts: tuple[str, ...]
    examples: str
    functions: dict[str, int]


CITY = Role(
    "city",
    "--geoip-city-db",
    ("City", "Enterprise"),
    "GeoLite2-City, GeoIP2-City or GeoIP2-Enterprise",
    {"geoip_country": 0, "geoip_country_code": 1, "geoip_city": 2},
)
COUNTRY = Role(
    "country",
    "--geoip-country-db",
    ("Country", "City", "Enterprise"),
    "GeoLite2-Country, GeoIP2-Country or a City database",
    {"geoip_country": 0, "geoip_country_code": 1},
)
ASN = Role(
    "asn",
    "--geoip-asn-db",
    ("ASN", "ISP"),
    "GeoLite2-ASN or GeoIP2-ISP",
    {"geoip_asn": 0, "geoip_asn_org": 1},
)
ROLES = {role.name: role for role in (CITY, COUNTRY, ASN)}


@dataclass(frozen=True)
class DatabaseInfo:
    """A checked database: where it is and what its metadata says."""

    role: str
    path: str
    database_type: str
    build_epoch: int

    def describe(self) -> str:
        return f"{self.database_type} built {build_date(self.build_epoch)}"


def check_database(path: str, role: Role, shown_as: str | None = None) -> DatabaseInfo:
    """Check ``path`` fully and that it can serve ``role``; raise :class:`UdfError` if not.
    A file checked before and not modified since is not read again.

    Args:
        path: local file to check.
        role: what the database is configured for.
        shown_as: how to name the database in errors (e.g. its s3:// URL).
    """
    try:
        stat = os.stat(path)
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None  # _check reports the missing file with the right words
    return _check(path, role.name, shown_as, version)


@lru_cache(maxsize=64)
def _check(path: str, role_name: str, shown_as: str | None, version: object) -> DatabaseInfo:
    role = ROLES[role_name]
    name = shown_as or path
    try:
        meta = check_mmdb(path)
    except MmdbProblem as exc:
        raise UdfError(f"{role.flag} {name}: {exc}") from exc
    kind = meta["database_type"]
    if not any(word in kind for word in role.accepts):
        raise UdfError(
            f"{role.flag} {name}: a {kind!r} database cannot give {', '.join(role.functions)}; "
            f"use a {role.examples} database"
        )
    return DatabaseInfo(role.name, path, kind, int(meta["build_epoch"]))


def _names(node: Any) -> str | None:
    if not isinstance(node, dict):
        return None
    names = node.get("names")
    return names.get(LANGUAGE) if isinstance(names, dict) else None


def _place(record: Any) -> tuple[Any, ...]:
    """(country name, ISO country code, city name) from a City/Country record."""
    if not isinstance(record, dict):
        return (None, None, None)
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, dict) else None
    return (_names(country), code, _names(record.get("city")))


def _network(record: Any) -> tuple[Any, ...]:
    """(AS number, AS organization) from an ASN/ISP record."""
    if not isinstance(record, dict):
        return (None, None)
    return (record.get("autonomous_system_number"), record.get("autonomous_system_organization"))


EXTRACT = {"city": _place, "country": _place, "asn": _network}


class GeoReader:
    """One open database with a cache of answers per sourceIPAddress value.

    Opened once per Python worker (see :func:`worker_reader`); ``values(raw)`` gives the role's
    fields for one raw sourceIPAddress value, looked up once however often it repeats.
    """

    def __init__(self, path: str, role: str) -> None:
        import maxminddb

        self.path = path
        self.role = role
        self._extract = EXTRACT[role]
        self._empty = self._extract(None)
        self._reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
        self._cache: dict[Any, tuple[Any, ...]] = {}

    def values(self, raw: Any) -> tuple[Any, ...]:
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        ip = public_ip(raw)
        result = self._empty if ip is None else self._extract(self._get(ip))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()  # cheap and rare: realistic logs reuse far fewer addresses
        self._cache[raw] = result
        return result

    def _get(self, ip: str) -> Any:
        try:
            return self._reader.get(ip)
        except Exception as exc:  # a damaged record the driver's sampled check did not reach
            raise UdfError(f"GeoIP database {self.path}: lookup of {ip} failed: {exc}") from exc


_WORKER_READERS: dict[tuple[str, str], GeoReader] = {}


def worker_reader(path: str, role: str) -> GeoReader:
    """The process-wide reader for ``path``: opened on first use, then reused by every batch."""
    key = (path, role)
    reader = _WORKER_READERS.get(key)
    if reader is None:
        reader = _WORKER_READERS[key] = GeoReader(path, role)
    return reader
