"""Coverage in `run`: every batch records the log files it read in ``log_deliveries`` (one
insert); a thread beside the queries judges the gaps, so no batch waits for it: every
``interval`` (5 minutes) once a batch has taken every file there was (not one cut short by
``--max-files``, whose unread backlog would look like silence), and once more when the runner
stops. Gap alerts are appended to ``alerts`` like `detect` does, and the delivery loop sends
them.

An open gap is judged against the newest delivery the runner has seen, not the clock: a runner
replaying history does not alert on the time since the history ended. A live judgement reads the
deliveries of the last ``window`` (30 days) before the newest one, so its cost does not grow
with the years behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.coverage.alerts import alerted_before, gap_alerts
from loader.coverage.deliveries import deliveries_table, judge_relation
from loader.coverage.gaps import GapSettings
from loader.errors import first_line
from loader.tables.deliveries import record_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class LiveCoverage:
    database: str
    settings: GapSettings = field(default_factory=GapSettings)
    max_files: int | None = None
    interval: float = 300.0  # seconds between judgements
    window: float = 30 * 86400.0  # the deliveries a live judgement reads, before the newest
    report: Callable[[str], None] = print
    _due: threading.Event = field(default_factory=threading.Event, init=False)
    _stopped: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _spark: SparkSession | None = field(default=None, init=False)
    batch: int = field(default=0, init=False)
    on_alerts: Callable[[], None] | None = None  # the delivery loop's kick

    def record(self, events: DataFrame, batch: int, files: int) -> None:
        """Record the files of a batch's (cached) events; a batch that took every file there
        was makes a judgement due."""
        from pyspark.sql import functions as F

        found = (
            events.groupBy("source_file", "account", "region")
            .agg(F.count("*").alias("events"), F.max("eventTime").alias("newest"))
            .withColumnRenamed("source_file", "path")
        )
        record_frame(events.sparkSession, self.database, found, "run")
        self.batch = batch
        if not (self.max_files and files >= self.max_files):
            self._due.set()

    def start(self, spark: SparkSession) -> LiveCoverage:
        self._spark = spark
        self._thread = threading.Thread(
            target=self._loop, args=(spark,), name="tsa-coverage", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; judge once more if a batch made it due."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        if self._spark is not None:
            self._judge(self._spark)

    def _loop(self, spark: SparkSession) -> None:
        while not self._stopped.wait(self.interval):
            self._judge(spark)

    def _judge(self, spark: SparkSession) -> None:
        if not self._due.is_set():
            return
        self._due.clear()
        try:
            added = self.judge(spark, self.batch)
        except Exception as exc:  # noqa: BLE001 - a failed judgement must not stop the runner
            self.report(f"coverage: gaps not judged this time: {first_line(exc)}")
            self._due.set()
            return
        if added:
            self.report(f"batch {self.batch}: {added} new log_delivery_gap alert(s) (coverage)")
            if self.on_alerts is not None:
                self.on_alerts()

    def judge(self, spark: SparkSession, batch: int) -> int:
        """Judge the gaps now; how many new alerts were written."""
        from loader.alerts.store import append_new_alerts

        relation = deliveries_table(self.database)
        spark.catalog.refreshTable(relation)  # the batches append to it from their sessions
        recent = (
            f"delivered_at >= (SELECT max(delivered_at) FROM {relation}) - "
            f"make_dt_interval(0, 0, 0, {int(self.window)})"
        )
        judgement = judge_relation(spark, relation, self.settings, None, recent)
        if not judgement.gaps:
            return 0
        earlier = alerted_before(spark, self.database)
        alerts = gap_alerts(spark, judgement.gaps, self.settings, batch, earlier)
        return append_new_alerts(spark, alerts, self.database)
