"""DDL text of the enrichment table and the enriched events view (testable without Spark)."""

from __future__ import annotations

from loader.sql import check_identifier, sql_string
from loader.tables.cloudtrail_ddl import EVENTS_VIEW, ViewDef

ENRICHMENT_TABLE = "ip_enrichment"
ENRICHED_VIEW = "cloudtrail_enriched"

# (column, type, UDF that computes it from the raw sourceIPAddress value)
ENRICHMENT_COLUMNS = (
    ("country", "string", "geoip_country"),
    ("country_code", "string", "geoip_country_code"),
    ("city", "string", "geoip_city"),
    ("asn", "bigint", "geoip_asn"),
    ("asn_org", "string", "geoip_asn_org"),
    ("is_tor", "boolean", "is_tor_exit"),
)
GEO_COLUMNS = tuple(c for c in ENRICHMENT_COLUMNS if c[0] != "is_tor")
TOR_COLUMN = next(c for c in ENRICHMENT_COLUMNS if c[0] == "is_tor")

# table properties remembering what the rows were computed with and which files were scanned
PROP_GEOIP = "tsa.enrichment.geoip"
PROP_TOR = "tsa.enrichment.tor"
PROP_FILES_THROUGH = "tsa.enrichment.files_checked_through"


def create_enrichment_table(db: str) -> str:
    columns = ", ".join(f"{name} {kind.upper()}" for name, kind, _ in ENRICHMENT_COLUMNS)
    comment = "GeoIP and Tor facts per distinct sourceIPAddress value, filled by `enrich`"
    return (
        f"CREATE TABLE IF NOT EXISTS {check_identifier(db)}.{ENRICHMENT_TABLE} "
        f"(ip STRING, {columns}, enriched_at TIMESTAMP) USING parquet "
        f"COMMENT {sql_string(comment)}"
    )


def set_properties(db: str, properties: dict[str, str]) -> str:
    pairs = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in sorted(properties.items()))
    return f"ALTER TABLE {check_identifier(db)}.{ENRICHMENT_TABLE} SET TBLPROPERTIES ({pairs})"


def column_expression(name: str, kind: str, function: str, available: set[str], arg: str) -> str:
    """``function(arg) AS name`` when the function is registered, a typed NULL otherwise."""
    if function in available:
        return f"{function}({arg}) AS {name}"
    return f"CAST(NULL AS {kind.upper()}) AS {name}"


def enriched_view(db: str) -> ViewDef:
    check_identifier(db)
    columns = ", ".join(f"e.{name}" for name, _, _ in ENRICHMENT_COLUMNS)
    query = (
        f"SELECT c.*, {columns}\n"
        f"FROM {db}.{EVENTS_VIEW} c\n"
        f"LEFT JOIN {db}.{ENRICHMENT_TABLE} e ON c.sourceIPAddress = e.ip"
    )
    comment = "CloudTrail events with GeoIP and Tor columns for sourceIPAddress (see `enrich`)"
    return ViewDef(db, ENRICHED_VIEW, comment, query)
