"""`run`: the rules over historical and new logs with Spark Structured Streaming.

Two streaming queries, one checkpoint folder (:mod:`loader.stream.checkpoint`):

1. **observe** (``CHECKPOINT/observe``, :mod:`loader.stream.observe`): new log files → each
   micro-batch through the rule engine's plan, its observations written as Parquet to
   ``CHECKPOINT/observations/batch-N``;
2. **apply** (``CHECKPOINT/state``, :mod:`loader.stream.apply`): those observations through the
   stateful step, state in Spark's state store; alerts, profile state and a status line.

The key is the rule's entity; for an account-wide profile, the value (the profile's start is
carried in the rows, so no key holds the whole profile); for an alert rule with ``dedup_key``
and no threshold, that key. A batch touches only the keys it has rows for, so its cost follows
the batch, not the size of the state. `detect` runs the same plan and step over the whole
history as one batch, so both raise the same alerts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loader.alerts.delivery import Deliverer
from loader.alerts.outbox import DeliveryLoop
from loader.alerts.tables import create_alert_tables
from loader.coverage.live import LiveCoverage
from loader.engine.plan import Plan
from loader.errors import first_line
from loader.rules.validate import columns_used
from loader.stream.apply import start_apply
from loader.stream.checkpoint import OBSERVATIONS, OBSERVE, Folder, check_engine, clean
from loader.stream.dedup import Deduplicator
from loader.stream.observe import observe_batch
from loader.tables.deliveries import ensure_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from loader.stream.history import History


class Runner:
    """The two queries. With ``--once`` the apply query starts when observe has read all."""

    def __init__(self, observe: StreamingQuery, start_apply: Callable[[], StreamingQuery],
                 once: bool, delivery: DeliveryLoop | None = None,
                 observed: Callable[[StreamingQuery], None] | None = None,
                 coverage: LiveCoverage | None = None) -> None:  # fmt: skip
        self.observe = observe
        self.coverage = coverage
        self._observed = observed  # called once the observe query has ended
        self._start_apply = start_apply
        self.delivery = delivery.start() if delivery else None
        self.apply = None if once else start_apply()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        for query in (self.observe, self.apply):
            if query is not None:
                query.stop()

    def wait(self) -> int:
        """Until both queries end (``--once``: when all is processed); 1 if one failed."""
        from pyspark.errors import StreamingQueryException

        try:
            self.observe.awaitTermination()
            if self._observed is not None:
                self._observed(self.observe)
            if self.coverage is not None:  # what the last batches made due, judged now
                self.coverage.stop()
            if self.apply is None and not self.stopped:
                self.apply = self._start_apply()
            if self.apply is not None:
                self.apply.awaitTermination()
        except StreamingQueryException as exc:
            # our own error raised in a batch arrives wrapped in Spark's and py4j's
            ours = re.search(r"TsaError: ([^\n]+)", str(exc))
            print(f"run failed: {ours.group(1) if ours else first_line(exc)}", flush=True)
            self.stop()
            return 1
        finally:
            if self.delivery is not None:  # a last round; what stays pending waits in the outbox
                self.delivery.stop()
        return 0


def _start_observe(
    events: DataFrame, observe: Callable[[DataFrame, int], None], checkpoint: str, once: bool,
    trigger: float | None,
) -> StreamingQuery:  # fmt: skip
    writer = events.writeStream.foreachBatch(observe).queryName("tsa-observe")
    writer = writer.option("checkpointLocation", checkpoint)
    if once:
        writer = writer.trigger(availableNow=True)
    elif trigger:
        writer = writer.trigger(processingTime=f"{int(trigger)} seconds")
    return writer.start()


def start(
    spark: SparkSession,
    events: DataFrame,
    plan: Plan,
    database: str,
    checkpoint: str,
    trigger: float | None,
    once: bool,
    report: Callable[[str], None] = print,
    strict: bool = False,
    deliverer: Deliverer | None = None,
    delivery_interval: float = 2.0,
    observed: Callable[[StreamingQuery], None] | None = None,
    enrichment: Any = None,
    history: History | None = None,
    coverage: LiveCoverage | None = None,
    dedup_window: float | None = None,
) -> Runner:
    """Start the runner's streaming queries over ``events``; ``Runner.wait()`` waits for them.
    With a ``deliverer``, new alerts also go to its sinks (:class:`DeliveryLoop`); ``observed``
    is called with the observe query once it has ended. ``dedup_window`` (seconds): count each
    event once by account and eventID within that window (:mod:`loader.stream.dedup`)."""
    root = Folder(spark, checkpoint)
    check_engine(root)
    database = create_alert_tables(spark, database)
    if coverage is not None:
        ensure_tables(spark, database)
        coverage.report = report
    delivery = None
    if deliverer is not None:
        delivery = DeliveryLoop(spark, database, deliverer, report, delivery_interval)
        if coverage is not None:
            coverage.on_alerts = delivery.kick
    observations = Folder(spark, root.child(OBSERVATIONS))
    observations.make()  # the apply query's source must exist before the first batch
    rules = [r.rule for r in plan.rules]
    used = columns_used(rules)
    dedup = Deduplicator(observations, dedup_window) if dedup_window else None

    def observe(batch: DataFrame, batch_id: int) -> None:
        observe_batch(batch, batch_id, plan, observations, strict=strict, used=used,
                      enrichment=enrichment, history=history, coverage=coverage,
                      dedup=dedup)  # fmt: skip

    clean(spark, root.child(OBSERVE), report)
    observe_query = _start_observe(events, observe, root.child(OBSERVE), once, trigger)
    on_alerts = delivery.kick if delivery else None
    return Runner(
        observe_query,
        lambda: start_apply(spark, rules, database, checkpoint, once, report, strict, on_alerts),
        once,
        delivery,
        observed,
        coverage.start(spark) if coverage is not None else None,
    )
