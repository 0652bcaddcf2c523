"""The enrichment settings of a command, turned into registered SQL functions."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from loader.config import Settings
from loader.durations import parse_duration

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from udfs.spark import Enrichment, EnrichmentConfig

SAMPLE_FILES = {
    "geoip_city_db": os.path.join("geoip", "tsa-sample-City.mmdb"),
    "geoip_asn_db": os.path.join("geoip", "tsa-sample-ASN.mmdb"),
    "tor_exit_list": os.path.join("tor", "exit-addresses"),
}


def enrichment_config(settings: Settings) -> EnrichmentConfig:
    from udfs.spark import EnrichmentConfig

    return EnrichmentConfig(
        geoip_city_db=settings.geoip_city_db,
        geoip_country_db=settings.geoip_country_db,
        geoip_asn_db=settings.geoip_asn_db,
        tor_exit_list=settings.tor_exit_list,
        tor_refresh_seconds=parse_duration(settings.tor_refresh, "--tor-refresh"),
    )


def preflight(settings: Settings) -> EnrichmentConfig:
    """Check every setting and GeoIP database before Spark starts, so a typo or a damaged
    file costs a second, not a JVM start. The checks are remembered for register_udfs."""
    from udfs.geoip import ASN, CITY, COUNTRY, check_database
    from udfs.sources import local_copy

    config = enrichment_config(settings)
    for role, source in (
        (CITY, config.geoip_city_db),
        (COUNTRY, config.geoip_country_db),
        (ASN, config.geoip_asn_db),
    ):
        if source:
            check_database(local_copy(source, role.flag), role, shown_as=source)
    return config


def enriched_session(
    settings: Settings, app_name: str, refresh: bool = False
) -> tuple[SparkSession, Enrichment]:
    """Check the enrichment settings (before any JVM), start the session, register the UDFs."""
    from loader.session import build_session

    preflight(settings)
    spark = build_session(settings, app_name)
    return spark, register(spark, settings, refresh=refresh)


def with_sample_sources(settings: Settings, sample: str) -> None:
    """Use the GeoIP databases and Tor list that generate-sample wrote, for every source the
    user did not configure (the demo runs with no MaxMind licence)."""
    if any(getattr(settings, key) for key in SAMPLE_FILES):
        return
    for key, relative in SAMPLE_FILES.items():
        path = os.path.join(sample, relative)
        if os.path.exists(path):
            setattr(settings, key, path)


def register(spark: SparkSession, settings: Settings, refresh: bool = True) -> Enrichment:
    """Register the configured UDFs in ``spark`` and say on stderr what was loaded."""
    from udfs.spark import register_udfs

    enrichment = register_udfs(spark, enrichment_config(settings), refresh=refresh)
    for line in enrichment.describe():
        print(line, file=sys.stderr)
    return enrichment
