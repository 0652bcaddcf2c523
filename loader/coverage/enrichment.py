"""Where enrichment could not answer, said instead of left as NULL: the days whose events had
no Tor exit list in force (``is_tor_exit_at`` is NULL for them), and the share of public source
addresses the GeoIP databases do not know.

Computed over the events a command already holds (cached), one small job each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from udfs.ip import public_ip

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SHOWN_DAYS = 10


def blind_spots(events: DataFrame, enrichment: Any) -> list[str]:
    """One line per kind of enrichment that could not answer for some of ``events``."""
    if enrichment is None:
        return []
    columns = {c.lower() for c in events.columns}
    lines = []
    if getattr(enrichment, "tor", None) is not None and "eventtime" in columns:
        line = _tor_days(events, enrichment)
        if line:
            lines.append(line)
    functions = set(getattr(enrichment, "functions", ()))
    if "geoip_country" in functions and "sourceipaddress" in columns:
        line = _geoip_share(events)
        if line:
            lines.append(line)
    return lines


def _tor_days(events: DataFrame, enrichment: Any) -> str | None:
    from loader.engine.lookups import _covered_sql

    index = getattr(enrichment, "tor_index", None)
    if index is None:
        return None
    covered = "false" if not index.coverage() else _covered_sql(events, "eventTime", enrichment)
    if covered is None:
        return None  # too many separate snapshots to say cheaply; the lookups still answer
    rows = (
        events.where("eventTime IS NOT NULL")
        .selectExpr("date_format(eventTime, 'yyyy-MM-dd') AS day", f"({covered}) AS covered")
        .where("NOT covered")
        .groupBy("day")
        .count()
        .orderBy("day")
        .collect()
    )
    if not rows:
        return None
    total = sum(r["count"] for r in rows)
    shown = ", ".join(f"{r.day} ({r['count']:,})" for r in rows[:SHOWN_DAYS])
    more = f" and {len(rows) - SHOWN_DAYS} more day(s)" if len(rows) > SHOWN_DAYS else ""
    return (
        f"Tor exit lists: no list in force for {total:,} event(s) on {len(rows)} day(s): "
        f"{shown}{more}; is_tor_exit_at is NULL for them. For a backtest, give --tor-exit-list "
        "a folder or tarball of CollecTor's exit-list archives covering those days"
    )


def _geoip_share(events: DataFrame) -> str | None:
    rows = (
        events.where("sourceIPAddress IS NOT NULL")
        .selectExpr("sourceIPAddress AS ip")
        .distinct()
        .selectExpr("ip", "geoip_country(ip) IS NOT NULL AS known")
        .collect()
    )
    public = [r for r in rows if public_ip(r.ip) is not None]
    unknown = [r.ip for r in public if not r.known]
    if not unknown:
        return None
    share = 100.0 * len(unknown) / len(public)
    examples = ", ".join(sorted(unknown)[:3])
    return (
        f"GeoIP: {len(unknown):,} of {len(public):,} public source addresses ({share:.1f}%) "
        f"have no answer in the configured databases (e.g. {examples}); their geoip_* "
        "functions return NULL"
    )
