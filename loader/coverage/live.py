"""Coverage in `run`: every batch records the log files it read in ``log_deliveries``; gaps are
judged after a batch that took every file there was (not one cut short by ``--max-files``, whose
unread backlog would look like silence), at most once a minute, and alerted like `detect` does.

An open gap is judged against the newest delivery the runner has seen, not the clock: a runner
replaying history does not alert on the time since the history ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.coverage.alerts import alerted_before, gap_alerts
from loader.coverage.deliveries import deliveries_relation, judge_relation, record_frame
from loader.coverage.gaps import GapSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class LiveCoverage:
    database: str
    settings: GapSettings = field(default_factory=GapSettings)
    max_files: int | None = None
    interval: float = 60.0  # seconds between judgements
    _judged: float = field(default=0.0, init=False)

    def record(self, events: DataFrame) -> None:
        """Record the files of a batch's (cached) events."""
        from pyspark.sql import functions as F

        files = (
            events.groupBy("source_file", "account", "region")
            .agg(F.count("*").alias("events"), F.max("eventTime").alias("newest"))
            .withColumnRenamed("source_file", "path")
        )
        record_frame(events.sparkSession, self.database, files, "run")

    def judge(self, session: SparkSession, batch: int, files: int) -> int:
        """Judge the gaps when due; how many new alerts were written."""
        from loader.alerts.store import append_new_alerts

        if self.max_files and files >= self.max_files:
            return 0  # a backlog remains: its files are not silence
        if time.monotonic() - self._judged < self.interval:
            return 0
        self._judged = time.monotonic()
        judgement = judge_relation(session, deliveries_relation(self.database), self.settings)
        if not judgement.gaps:
            return 0
        earlier = alerted_before(session, self.database)
        alerts = gap_alerts(session, judgement.gaps, self.settings, batch, earlier)
        return append_new_alerts(session, alerts, self.database)
