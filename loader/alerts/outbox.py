"""The outbox: ``security.alerts`` joined with ``security.alert_deliveries``.

An alert is pending for a sink until a final attempt for the pair is in
``alert_deliveries`` (see :mod:`loader.alerts.delivery`); a round reads the pending pairs,
sends, and appends every attempt. So a process that stops (or is killed) with deliveries
pending delivers them on its next round, whichever command runs it (`run`, `detect`,
`deliver`).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from loader.alerts.delivery import FINAL, Attempt, Deliverer, RoundReport
from loader.alerts.model import ALERTS_TABLE
from loader.sql import sql_string

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELIVERIES_TABLE = "alert_deliveries"
DELIVERY_COLUMNS = (
    "alert_id string, sink string, status string, attempt int, reason string, "
    "attempted_at timestamp"
)


def create_deliveries_table(db: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{DELIVERIES_TABLE} ({DELIVERY_COLUMNS.upper()}) "
        "USING parquet COMMENT 'Every delivery attempt and decision, per alert and sink'"
    )


def pending_sql(db: str, sinks: list[str]) -> str:
    final = ", ".join(sql_string(status) for status in FINAL)
    names = ", ".join(sql_string(name) for name in sinks)
    return f"""
WITH tries AS (
  SELECT alert_id, sink, max(attempt) AS attempts,
         max(CASE WHEN status IN ({final}) THEN 1 ELSE 0 END) AS done
  FROM {db}.{DELIVERIES_TABLE} GROUP BY alert_id, sink
)
SELECT a.*, s.sink AS __sink, coalesce(t.attempts, 0) AS __attempts
FROM {db}.{ALERTS_TABLE} a
CROSS JOIN (SELECT explode(array({names})) AS sink) s
LEFT JOIN tries t ON t.alert_id = a.alert_id AND t.sink = s.sink
WHERE coalesce(t.done, 0) = 0
"""


def deliver_round(spark: SparkSession, db: str, deliverer: Deliverer) -> RoundReport:
    """Read what is pending, send it, record every attempt; what the round did."""
    names = [sink.name for sink in deliverer.sinks]
    for table in (ALERTS_TABLE, DELIVERIES_TABLE):
        spark.catalog.refreshTable(f"{db}.{table}")
    rows = [row.asDict() for row in spark.sql(pending_sql(db, names)).collect()]
    if not rows:
        return RoundReport()
    pending: dict[str, list[dict[str, Any]]] = {}
    tries = {}
    for row in rows:
        sink = row.pop("__sink")
        tries[(row["alert_id"], sink)] = row.pop("__attempts")
        pending.setdefault(sink, []).append(row)
    attempts, report = deliverer.deliver(pending, _context(spark, db, rows, deliverer), tries)
    record(spark, db, attempts)
    return report


def record(spark: SparkSession, db: str, attempts: list[Attempt]) -> None:
    if attempts:
        frame = spark.createDataFrame([asdict(a) for a in attempts], DELIVERY_COLUMNS)
        frame.write.insertInto(f"{db}.{DELIVERIES_TABLE}")


def deliver_until_done(
    spark: SparkSession, db: str, deliverer: Deliverer, wait: float, report=print
) -> int:
    """Rounds until nothing is pending or ``wait`` seconds have passed; pending left."""
    deadline = time.monotonic() + wait
    while True:
        outcome = deliver_round(spark, db, deliverer)
        report(outcome.render())
        if not outcome.pending or time.monotonic() >= deadline:
            return outcome.pending
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))


def _context(
    spark: SparkSession, db: str, rows: list[dict[str, Any]], deliverer: Deliverer
) -> list[dict[str, Any]]:
    """The alerts around the pending ones that a dedup window can reach back to: the
    dedup walk over them decides again what it decided before."""
    times = [row["event_time"] for row in rows if row.get("event_time")]
    if not times:
        return []
    start = min(times) - dt.timedelta(seconds=deliverer.policy.longest_window)
    query = (
        f"SELECT * FROM {db}.{ALERTS_TABLE} WHERE event_time >= "
        f"timestamp {sql_string(start.isoformat(sep=' '))} AND event_time <= "
        f"timestamp {sql_string(max(times).isoformat(sep=' '))}"
    )
    return [row.asDict() for row in spark.sql(query).collect()]


class DeliveryLoop:
    """`run`'s delivery: a thread that runs a round when a batch added alerts (``kick``),
    again every ``interval`` while something is pending (a sink is down), and every ``idle``
    seconds otherwise (alerts another process wrote). ``stop`` runs a last round."""

    def __init__(
        self,
        spark: SparkSession,
        db: str,
        deliverer: Deliverer,
        report=print,
        interval: float = 2.0,
        idle: float = 60.0,
    ) -> None:
        import threading

        self.spark, self.db, self.deliverer, self.report = spark, db, deliverer, report
        self.interval, self.idle = interval, idle
        self._wake, self._stopped = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tsa-delivery", daemon=True)

    def start(self) -> DeliveryLoop:
        self._wake.set()  # what an earlier run left pending goes first
        self._thread.start()
        return self

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._wake.set()
        self._thread.join()
        self.round()

    def round(self) -> RoundReport | None:
        with self._lock:
            try:
                outcome = deliver_round(self.spark, self.db, self.deliverer)
            except Exception as exc:  # keep the runner going; the outbox keeps the alerts
                from loader.errors import first_line

                self.report(f"delivery round failed, will retry: {first_line(exc)}")
                return None
        if outcome.counts or outcome.pending:
            self.report(outcome.render())
        return outcome

    def _loop(self) -> None:
        wait = 0.0
        while not self._stopped.is_set():
            self._wake.wait(wait)
            if self._stopped.is_set():
                return
            self._wake.clear()
            outcome = self.round()
            wait = self.interval if outcome is None or outcome.pending else self.idle
