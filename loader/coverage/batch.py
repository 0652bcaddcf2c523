"""The gap alerts `detect` adds to a batch run, and the gap settings of every command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loader.errors import ConfigError

if TYPE_CHECKING:
    from loader.config import Settings
    from loader.coverage.gaps import GapSettings


def gap_settings(settings: Settings) -> GapSettings:
    """``min_gap`` and ``gap_factor`` checked, as the judge takes them."""
    from loader.coverage.gaps import GapSettings
    from loader.durations import parse_duration

    if settings.gap_factor <= 0:
        raise ConfigError(f"--gap-factor {settings.gap_factor}: expected a number above 0")
    min_gap = parse_duration(settings.min_gap, "--min-gap")
    return GapSettings(min_gap=min_gap, factor=settings.gap_factor)


def detect_coverage(spark: Any, settings: Settings) -> Any:
    """The gap alerts `detect` adds, as a function of the batch id; None when off or when
    there is nothing to judge (said in one line)."""
    from loader.coverage.alerts import alerted_before, gap_alerts
    from loader.coverage.deliveries import (
        coverage_where,
        deliveries_table,
        judge_relation,
        listing_relation,
    )
    from loader.tables.deliveries import DELIVERIES_TABLE, table_exists

    if settings.no_coverage:
        return None
    gaps = gap_settings(settings)
    database = settings.database
    if settings.source and not settings.table:  # detect reads the folder, not a table
        relation = listing_relation(spark, settings.source)
    elif table_exists(spark, database, DELIVERIES_TABLE):
        relation = deliveries_table(database)
    else:
        print(f"coverage: no {database}.{DELIVERIES_TABLE} (create-hive-table records "
              "the files it loads); delivery gaps not judged")  # fmt: skip
        return None
    where = coverage_where(settings.since, settings.until)

    def alerts(batch_id: int) -> Any:
        judgement = judge_relation(spark, relation, gaps, None, where)
        earlier = alerted_before(spark, database)
        return gap_alerts(spark, judgement.gaps, gaps, batch_id, earlier)

    return alerts


def reference_time(value: str | None) -> Any:
    """`coverage --now`: None (the newest delivery seen), 'now' (the clock) or a time; naive
    UTC as the deliveries are."""
    import datetime as dt

    if not value:
        return None
    if value == "now":
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    try:
        now = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--now {value!r}: expected 'now' or a time such as "
                          "2024-03-31T12:00") from exc  # fmt: skip
    if now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return now
