"""`run --events-queue-url`: a Structured Streaming source of the CloudTrail events EventBridge
puts on an SQS queue (:mod:`loader.sources.events`), as a Python data source.

On the driver, ``latestOffset`` takes the queue's messages into the inbox and answers with its
last entry; ``partitions`` hands a batch's events to tasks (they travel with the partition, so
executors need no access to the inbox); ``commit`` deletes the messages of committed entries.
The rows have what the ``cloudtrail`` view's typing SQL reads (``Records``, the event's
``file_path``, ``account``, ``region``, ``dt``), so the queue's events are typed exactly like
the log files' events.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    SupportsTriggerAvailableNow,
)

from loader.sources.events import INTAKE_SECONDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMAT = "tsa_cloudtrail_events"
SCHEMA = "Records ARRAY<STRING>, file_path STRING, account STRING, region STRING, dt STRING"
OFFSET = "events_entry"  # distinct from the file source's "entry" in a query's progress
RAW_VIEW = "__stream_events_raw"
IDLE_POLL = 2  # seconds of an idle intake's long poll (SQS charges per request, not per wait)


class EventsPartition(InputPartition):
    def __init__(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        super().__init__(len(rows))
        self.rows = rows


class EventsQueueSource(DataSource):
    """Options (keys arrive lower-cased): queue_url, inbox, partitions, visibility_timeout."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802 (pyspark's name)
        return EventsQueueReader(dict(self.options))


class EventsQueueReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.tasks = max(1, int(options.get("partitions") or 2))
        self.target: int | None = None
        self._queue: Any = None
        self._lock = threading.Lock()
        self._intake: threading.Thread | None = None
        self._failed: BaseException | None = None

    def __getstate__(self) -> dict[str, Any]:  # executors get the options, not the clients
        return {**self.__dict__, "_queue": None, "_lock": None, "_intake": None}

    def _follow(self) -> None:
        """Take messages in while batches run, so a batch takes everything that came during
        the one before (an intake per trigger would hold events back by a batch's length)."""
        idle = False
        try:
            while True:
                with self._lock:  # idle: one long poll, which returns as soon as a message is in
                    report = self.queue.receive(
                        wait_seconds=IDLE_POLL if idle else 0, max_receives=1 if idle else 100,
                        budget=INTAKE_SECONDS,
                    )  # fmt: skip
                if report.rejected:
                    _say(report.render())
                idle = report.messages == report.again
        except BaseException as exc:  # noqa: BLE001 (reported by the next latestOffset)
            self._failed = exc

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from loader.sources.events import EventInbox, EventQueue

            timeout = int(self.options.get("visibility_timeout") or 900)
            inbox = EventInbox(self.options["inbox"])
            self._queue = EventQueue(self.options["queue_url"], inbox, timeout)
        return self._queue

    def initialOffset(self) -> dict[str, int]:  # noqa: N802
        return {OFFSET: 0}

    def prepareForTriggerAvailableNow(self) -> None:  # noqa: N802
        _say(self.queue.drain().render())
        self.target = self.queue.inbox.last

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:  # noqa: N802
        if self.target is not None:  # --once: what prepareForTriggerAvailableNow drained
            return {OFFSET: max(self.target, start[OFFSET])}
        if self._intake is None:
            self._intake = threading.Thread(target=self._follow, name="tsa-events-intake",
                                             daemon=True)  # fmt: skip
            self._intake.start()
        if self._failed is not None:
            raise self._failed
        with self._lock:
            last = self.queue.inbox.last
        return {OFFSET: max(last, start[OFFSET])}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        return ReadAllAvailable()

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        with self._lock:
            entries = self.queue.inbox.entries(start[OFFSET], end[OFFSET])
        rows = [
            (event.path, event.record, event.account, event.region, event.day)
            for entry in entries
            for event in entry.events
        ]
        if not rows:
            return []
        count = min(self.tasks, max(1, len(rows) // 500))  # small batches: one task
        return [EventsPartition(rows[i::count]) for i in range(count)]

    def commit(self, end: dict[str, int]) -> None:
        with self._lock:
            self.queue.inbox.commit(end[OFFSET], self.queue.delete)

    def read(self, partition: InputPartition) -> Iterator[tuple[Any, ...]]:
        for path, record, account, region, day in partition.rows:  # type: ignore[attr-defined]
            yield ([record], path, account, region, day)


def commit_finished_events(query: Any, inbox: str, queue_url: str) -> None:
    """Once the query has ended: commit what its last batch committed (see
    :func:`loader.stream.sqs_source.commit_finished`)."""
    import json

    from loader.sources.events import EventInbox, EventQueue

    progress = query.lastProgress or {}
    for source in progress.get("sources", []):
        end = source.get("endOffset")
        end = json.loads(end) if isinstance(end, str) else end
        if isinstance(end, dict) and isinstance(end.get(OFFSET), int):
            box = EventInbox(os.path.abspath(inbox))
            box.commit(end[OFFSET], EventQueue(queue_url, box).delete)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def stream_queue_events(
    spark: SparkSession, queue_url: str, inbox: str, visibility_timeout: int = 900
) -> DataFrame:
    """A streaming DataFrame of the CloudTrail events on an EventBridge queue, typed exactly
    like the ``cloudtrail`` view."""
    from loader.tables.cloudtrail_ddl import events_query

    spark.dataSource.register(EventsQueueSource)
    options = {
        "queue_url": queue_url,
        "inbox": os.path.abspath(inbox),
        "partitions": str(spark.sparkContext.defaultParallelism),
        "visibility_timeout": str(visibility_timeout),
    }
    raw = spark.readStream.format(FORMAT).options(**options).load()
    raw.createOrReplaceTempView(RAW_VIEW)
    return spark.sql(events_query(RAW_VIEW, file_path="file_path"))
