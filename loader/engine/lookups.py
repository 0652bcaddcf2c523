"""Enrichment lookups once per distinct argument: the events of a batch with a column per
:class:`~loader.engine.plan.Lookup`, joined from a small table of answers.

A batch of a million events holds a few thousand distinct ``sourceIPAddress`` values, so
``geoip_country(sourceIPAddress)`` is asked a few thousand times instead of a million.

``is_tor_exit_at(ip, t)`` depends on the time too, but for almost every address the answer
does not: an address no snapshot lists is *not* an exit wherever a snapshot is close enough to
``t`` to tell (``false``), and unknown elsewhere (``NULL``). So the addresses are asked once
whether any snapshot lists them; only events from listed addresses (a handful) are asked the
exact question, once per distinct (address, time); and which times a snapshot covers is a
short list of intervals written into the SQL. Without the coverage (no enrichment object, a
time that is not a TIMESTAMP, too many intervals), every distinct (address, time) is asked:
still exact, just not cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loader.engine.planned import Lookup
from loader.engine.scratch import Scratch

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TOR_AT = "is_tor_exit_at"
MAX_INTERVALS = 64  # more would make every event's test longer than asking per distinct time
# A table of answers is joined to every event: broadcast unless huge (a localCheckpoint carries
# no size, so Spark would shuffle all the events' columns for a sort-merge join instead)
MAX_BROADCAST = 2_000_000


def enrich(
    events: DataFrame, lookups: Sequence[Lookup], scratch: Scratch, enrichment: Any = None
) -> DataFrame:
    """``events`` with one column per lookup (each lookup's ``column``); the small tables of
    answers are computed here (a job per argument) and their views kept in ``scratch``."""
    if not lookups:
        return events
    from udfs.spark import TOR_LISTED

    session = events.sparkSession
    view = scratch.view(events, "events")
    by_argument: dict[str, list[Lookup]] = {}
    for lookup in lookups:
        by_argument.setdefault(lookup.arguments[0], []).append(lookup)
    listed_ok = session.catalog.functionExists(TOR_LISTED)
    joins, columns, tor, hints = [], [], [], []
    for number, (argument, group) in enumerate(by_argument.items()):
        key = f"__tsa_k{number}"
        answers = [f"{lk.function}({key}) AS {lk.column}" for lk in group if lk.function != TOR_AT]
        columns += [f"l{number}.{lk.column}" for lk in group if lk.function != TOR_AT]
        listed = f"__tsa_listed{number}"
        if any(lk.function == TOR_AT for lk in group) and listed_ok:
            answers.append(f"{TOR_LISTED}({key}) AS {listed}")
            columns.append(f"l{number}.{listed}")
        tor += [(lk, listed if listed_ok else None) for lk in group if lk.function == TOR_AT]
        if not answers:
            continue
        table = session.sql(
            f"SELECT {key}, {', '.join(answers)} FROM "
            f"(SELECT DISTINCT {argument} AS {key} FROM {view} WHERE {argument} IS NOT NULL)"
        ).localCheckpoint()
        name = scratch.view(table, "lookup")
        if table.count() <= MAX_BROADCAST:
            hints.append(f"l{number}")
        joins.append(f"LEFT JOIN {name} l{number} ON ({argument}) = l{number}.{key}")
    selected = ", ".join(["e.*", *columns])
    hint = f"/*+ BROADCAST({', '.join(hints)}) */ " if hints else ""
    enriched = session.sql(f"SELECT {hint}{selected} FROM {view} e {' '.join(joins)}")
    for lookup, listed in tor:
        enriched = _tor_at(enriched, lookup, listed, scratch, enrichment)
    return enriched


def _tor_at(
    events: DataFrame, lookup: Lookup, listed: str | None, scratch: Scratch, enrichment: Any
) -> DataFrame:
    """``events`` with the answer of ``is_tor_exit_at(ip, t)`` in ``lookup.column``."""
    session = events.sparkSession
    ip, time = lookup.arguments
    covered = _covered_sql(events, time, enrichment) if listed else None
    view = scratch.view(events, "tor")
    if covered is None:  # every distinct (address, time) asked
        asked, answer = f"{ip} IS NOT NULL AND {time} IS NOT NULL", "p.__tsa_answer"
    else:  # only listed addresses, at times a snapshot can tell
        asked = f"{listed} AND {covered}"
        answer = (
            f"CASE WHEN {ip} IS NULL OR {time} IS NULL OR NOT ({covered}) THEN NULL "
            f"WHEN NOT coalesce({listed}, false) THEN false ELSE p.__tsa_answer END"
        )
    pairs = session.sql(
        f"SELECT __tsa_ip, __tsa_t, {TOR_AT}(__tsa_ip, __tsa_t) AS __tsa_answer FROM ("
        f"SELECT DISTINCT {ip} AS __tsa_ip, {time} AS __tsa_t FROM {view} WHERE {asked})"
    ).localCheckpoint()
    name = scratch.view(pairs, "torpairs")
    hint = "/*+ BROADCAST(p) */ " if pairs.count() <= MAX_BROADCAST else ""
    return session.sql(
        f"SELECT {hint}e.*, {answer} AS {lookup.column} FROM {view} e LEFT JOIN {name} p "
        f"ON ({ip}) <=> p.__tsa_ip AND ({time}) <=> p.__tsa_t"
    )


def _covered_sql(events: DataFrame, time: str, enrichment: Any) -> str | None:
    """SQL true when a snapshot is close enough to ``time`` for the lists to answer (the
    intervals of the index the registered functions use), or None when that cannot be said."""
    index = getattr(enrichment, "tor_index", None)
    if index is None:
        return None
    kind = events.selectExpr(f"{time} AS t").schema["t"].dataType.typeName()
    if kind != "timestamp":
        return None
    intervals = index.coverage()
    if not intervals or len(intervals) > MAX_INTERVALS:
        return None
    micros = f"unix_micros({time})"
    return " OR ".join(
        f"{micros} BETWEEN {math.ceil(lo * 1e6)} AND {math.floor(hi * 1e6)}" for lo, hi in intervals
    )
