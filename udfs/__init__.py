"""Enrichment lookups for SQL: GeoIP (MaxMind databases) and Tor exit lists.

The lookups are plain Python (:mod:`udfs.geoip`, :mod:`udfs.tor`); :mod:`udfs.spark` registers
them as vectorized Spark SQL functions with one call::

    from udfs.spark import EnrichmentConfig, register_udfs
    register_udfs(spark, EnrichmentConfig(geoip_city_db="GeoLite2-City.mmdb",
                                          tor_exit_list="https://check.torproject.org/exit-addresses"))
"""

UDF_NAMES = (
    "geoip_country",
    "geoip_country_code",
    "geoip_city",
    "geoip_asn",
    "geoip_asn_org",
    "is_tor_exit",
    "is_tor_exit_at",
)
