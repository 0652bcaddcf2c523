"""Spark registration: one call makes every configured lookup a SQL function of a session.

Lookups run as vectorized pandas (Arrow) UDFs. GeoIP databases are checked on the driver, then
shipped to executors with Spark's file distribution and opened once per Python worker; each
worker caches answers per distinct sourceIPAddress value. Tor exit lists are read on the driver
and broadcast; a background thread re-reads the source every ``tor_refresh_seconds`` and, when
it changed, re-registers the Tor functions with the new lists, so a long-running session (the
Thrift server, the streaming runner) follows the list without a restart.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from udfs.geoip import ASN, CITY, COUNTRY, DatabaseInfo, Role, check_database, worker_reader
from udfs.sources import local_copy, staged_copy
from udfs.tor import TorExitIndex, TorExitList
from udfs.vectorized import epoch_seconds, map_distinct, tor_exit_at

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RETURN_TYPES = {"geoip_asn": "bigint"}
TOR_LISTED = "__tsa_tor_ever_listed"


@dataclass(frozen=True)
class EnrichmentConfig:
    """Where the enrichment data is; any of it may be missing. Paths may be local or s3://;
    the Tor list may also be an http(s) URL, a folder of snapshots or a tarball of them."""

    geoip_city_db: str | None = None
    geoip_country_db: str | None = None
    geoip_asn_db: str | None = None
    tor_exit_list: str | None = None
    tor_refresh_seconds: float = 3600.0


@dataclass
class Enrichment:
    """What :func:`register_udfs` set up in a session."""

    spark: Any
    config: EnrichmentConfig
    functions: list[str] = field(default_factory=list)
    databases: dict[str, DatabaseInfo] = field(default_factory=dict)
    tor: TorExitList | None = None
    tor_index: TorExitIndex | None = None  # what the registered Tor functions answer from
    _broadcast: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> list[str]:
        lines = [f"{info.role} database: {info.describe()}" for info in self.databases.values()]
        if self.tor is not None:
            lines.append(f"tor exit list: {self.tor.describe()}")
            lines += [f"  skipped {problem}" for problem in self.tor.problems[:10]]
        return lines

    def refresh_tor(self) -> bool:
        """Re-read the Tor source; re-register the Tor functions if it changed."""
        if self.tor is None or not self.tor.refresh():
            return False
        self._register_tor()
        return True

    def stop(self) -> None:
        self._stop.set()

    def _register_tor(self) -> None:
        assert self.tor is not None
        self.tor_index = self.tor.index()
        old, self._broadcast = self._broadcast, self.spark.sparkContext.broadcast(self.tor_index)
        zone = self.spark.conf.get("spark.sql.session.timeZone")
        for name, function in _tor_udfs(self._broadcast, zone).items():
            self.spark.udf.register(name, function)
            if name not in self.functions and name != TOR_LISTED:
                self.functions.append(name)
        if old is not None:
            old.unpersist(blocking=False)  # queries planned with it re-fetch it if they need it

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.config.tor_refresh_seconds):
            try:
                if self.refresh_tor():
                    print(f"tor exit list refreshed: {self.tor.describe()}", file=sys.stderr)
            except Exception as exc:  # keep serving with the lists already loaded
                print(f"tor exit list refresh failed, keeping the old one: {exc}", file=sys.stderr)


def register_udfs(
    spark: SparkSession, config: EnrichmentConfig, refresh: bool = True
) -> Enrichment:
    """Check the configured sources and register their functions in ``spark``.

    Raises:
        UdfError: a database or exit list is missing or damaged; the message names it.
    """
    enrichment = Enrichment(spark, config)
    geo = [
        (CITY, config.geoip_city_db),
        (COUNTRY, config.geoip_country_db),
        (ASN, config.geoip_asn_db),
    ]
    providers: dict[str, tuple[Role, str]] = {}
    for role, source in geo:
        if not source:
            continue
        local = local_copy(source, role.flag)
        info = check_database(local, role, shown_as=source)
        enrichment.databases[role.name] = info
        shipped = staged_copy(local)
        spark.sparkContext.addFile(shipped)
        for function in role.functions:
            # a Country database answers the country functions even when a City one is given
            if function not in providers or role is COUNTRY:
                providers[function] = (role, shipped)
    for function, (role, shipped) in providers.items():
        spark.udf.register(function, _geo_udf(shipped, role, function))
        enrichment.functions.append(function)
    if config.tor_exit_list:
        enrichment.tor = TorExitList(config.tor_exit_list)
        enrichment.tor.refresh()
        enrichment._register_tor()
        if refresh and config.tor_refresh_seconds > 0:
            threading.Thread(
                target=enrichment._refresh_loop, name="tor-exit-list-refresh", daemon=True
            ).start()
    return enrichment


def _geo_udf(shipped: str, role: Role, function: str) -> Any:
    import os

    from pyspark.sql.functions import pandas_udf

    name, role_name, position = os.path.basename(shipped), role.name, role.functions[function]

    def lookup(ips: pd.Series) -> pd.Series:
        from pyspark import SparkFiles

        reader = worker_reader(SparkFiles.get(name), role_name)
        return map_distinct(ips, lambda raw: reader.values(raw)[position])

    return pandas_udf(lookup, RETURN_TYPES.get(function, "string"))


def _tor_udfs(broadcast: Any, zone: str) -> dict[str, Any]:
    from pyspark.sql.functions import pandas_udf

    def is_tor_exit(ips: pd.Series) -> pd.Series:
        return map_distinct(ips, broadcast.value.is_exit)

    def is_tor_exit_at(ips: pd.Series, times: pd.Series) -> pd.Series:
        return tor_exit_at(broadcast.value, ips, epoch_seconds(times, zone))

    def ever_listed(ips: pd.Series) -> pd.Series:
        return map_distinct(ips, broadcast.value.ever_listed)

    return {
        "is_tor_exit": pandas_udf(is_tor_exit, "boolean"),
        "is_tor_exit_at": pandas_udf(is_tor_exit_at, "boolean"),
        # not for users: lets the rule engine call is_tor_exit_at only for listed addresses
        TOR_LISTED: pandas_udf(ever_listed, "boolean"),
    }
