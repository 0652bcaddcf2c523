"""The observe query's work: each micro-batch of events through the rule engine
(:mod:`loader.engine`), its observations written as ``CHECKPOINT/observations/batch-N``.

A batch's events are cached once (only the columns the rules read) and observed by the plan: a
pass for all fused rules, a job per solo rule. A rule that fails is named with its file and left
out of the batch (``--strict``: the runner stops). The observations and a status row (events,
files, newest event, failed rules) are written as Parquet to a partial folder made visible by
one rename; a replayed batch finds its folder there and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import TYPE_CHECKING, Any

from loader.engine import timing
from loader.engine.evaluate import cache_events
from loader.engine.observe import observe
from loader.engine.plan import Plan
from loader.engine.sql import OBSERVATION_SCHEMA
from loader.stream.checkpoint import STARTS_FILE, Carried, Folder, batch_folder, previous_carried
from loader.stream.dedup import IS_QUEUE, SEEN_FILE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from loader.coverage.live import LiveCoverage
    from loader.stream.dedup import Deduplicator
    from loader.stream.history import History

STATUS_RULE = "__batch"  # the status row's "rule"
PHASES_ENV = "TSA_PHASES"  # set: each batch prints where its time went (benchmarks)
BLIND_EVERY = 3600.0  # seconds between two reports of the enrichment's blind spots
_blind_said: dict[tuple[str, int], float] = {}  # (observations folder, plan) -> when said


def _say_blind_spots(events: DataFrame, enrichment: Any, batch: int, key: tuple[str, int]) -> None:
    """Where enrichment could not answer (:mod:`loader.coverage.enrichment`): for the first
    batch a runner runs (the history, when it starts), then at most once an hour."""
    import time

    from loader.coverage.enrichment import blind_spots

    if enrichment is None or time.monotonic() - _blind_said.get(key, -BLIND_EVERY) < BLIND_EVERY:
        return
    _blind_said[key] = time.monotonic()
    for line in blind_spots(events, enrichment):
        print(f"batch {batch}: blind spot: {line}", flush=True)


TOTALS = (
    f"count(DISTINCT CASE WHEN NOT {IS_QUEUE} THEN source_file END) AS files",
    "max(CAST(eventTime AS TIMESTAMP)) AS newest",
)


def _read(
    events: DataFrame, batch: int, used: set[str] | None, history: History | None
) -> tuple[DataFrame, int]:
    """The batch's events cached (the columns the rules read, and those the runner needs),
    with the history days in the first batch; and how many."""
    if history is not None and batch == 0:
        events = events.unionByName(history.events(events.sparkSession))
    keep = None if used is None else used | {"eventtime", "source_file", "account", "region",
                                              "eventid"}  # fmt: skip
    with timing.phase("read"):
        return cache_events(events, keep)


def _status_row(
    session: Any, batch: int, started: dt.datetime, clock: dt.datetime | None,
    newest: dt.datetime | None, summary: dict[str, Any],
) -> DataFrame:  # fmt: skip
    """The batch's own record among its observations: what came in, for the status line."""
    summary = {**summary, "started": started.isoformat(),
               "newest": newest.isoformat() if newest else None}  # fmt: skip
    return session.createDataFrame(
        [(STATUS_RULE, str(batch), None, None, started, "", json.dumps(summary),
          None, None, None, batch, clock or dt.datetime(1970, 1, 1))],
        OBSERVATION_SCHEMA,
    )  # fmt: skip


def _small_shuffles(session: Any) -> int:
    """A batch's aggregations are small: Spark's 200 shuffle partitions made a 1,000-event
    batch cost 7.5 s instead of 4.1 s. One per core (the query's session is its own: this
    stays in the query); the number of cores."""
    cores = int(session.sparkContext.defaultParallelism)
    session.conf.set("spark.sql.shuffle.partitions", str(cores))
    return cores


def _finish(folder: Folder, batch: int, carried: Carried, new_keys: bytes | None) -> None:
    """Write beside the batch's observations what the next batch carries on (starts, clock)
    and the keys it counted, then make the batch final in one rename."""
    partial = f"_partial-{batch:09d}"
    folder.write_text(f"{partial}/{STARTS_FILE}", carried.text())
    if new_keys:
        folder.write_bytes(f"{partial}/{SEEN_FILE}", new_keys)
    folder.rename(partial, batch_folder(batch))


def observe_batch(
    events: DataFrame,
    batch: int,
    plan: Plan,
    folder: Folder,
    *,
    strict: bool = False,
    used: set[str] | None = None,
    enrichment: Any = None,
    history: History | None = None,
    coverage: LiveCoverage | None = None,
    dedup: Deduplicator | None = None,
) -> bool:
    """Write the observations of one batch of events to ``observations/batch-N``; False when a
    replay finds them written. ``used``: the event columns the rules read (None: all). Batch 0
    takes the ``history`` days from their table; ``dedup`` drops events seen before."""
    final, partial = batch_folder(batch), f"_partial-{batch:09d}"
    if folder.exists(final):
        return False
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    session = events.sparkSession
    timing.clear()
    events, count = _read(events, batch, used, history)
    kept, extra = events, {}
    cores = _small_shuffles(session)
    try:
        with timing.phase("totals"):
            totals = events.selectExpr(*TOTALS).first()
            before = previous_carried(folder, batch)
        clock = max(filter(None, (before.clock, totals.newest)), default=None)
        if dedup is not None:
            with timing.phase("dedup"):
                outcome = dedup.apply(events, batch, clock)
            kept, extra = outcome.events, outcome.summary()
        observed = observe(
            kept, plan, batch, enrichment=enrichment, strict=strict,
            starts=before.starts, clock=clock or dt.datetime(1970, 1, 1),
        )  # fmt: skip
        _say_blind_spots(events, enrichment, batch, (folder.path, id(plan)))
        summary = {"events": count, "files": totals.files, "errors": observed.errors, **extra}
        status = _status_row(session, batch, started, clock, totals.newest, summary)
        folder.delete(partial)
        rows = observed.observations.unionByName(status).coalesce(cores)
        with timing.phase("write"):
            rows.write.parquet(folder.child(partial))
        if coverage is not None:  # before the batch is final: a replay records what is missing
            files = events.where(f"NOT {IS_QUEUE}") if dedup is not None else events
            coverage.record(files, batch, totals.files)
    finally:
        if kept is not events:
            kept.unpersist()
        events.unpersist()
    new_keys = outcome.new_keys if dedup is not None else None
    _finish(folder, batch, Carried(observed.starts, clock), new_keys)
    if dedup is not None:
        dedup.remember(batch, new_keys)
    if os.environ.get(PHASES_ENV):
        print(f"batch {batch}: observe: {timing.render()}", flush=True)
    return True
