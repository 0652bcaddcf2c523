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
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    SupportsTriggerAvailableNow,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMAT = "tsa_cloudtrail_events"
SCHEMA = "Records ARRAY<STRING>, file_path STRING, account STRING, region STRING, dt STRING"
OFFSET = "events_entry"  # distinct from the file source's "entry" in a query's progress
RAW_VIEW = "__stream_events_raw"


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

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_queue": None}

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
        if self.target is None:
            report = self.queue.receive()
            if report.rejected:
                _say(report.render())
        last = self.queue.inbox.last if self.target is None else self.target
        return {OFFSET: max(last, start[OFFSET])}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        return ReadAllAvailable()

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        rows = [
            (event.path, event.record, event.account, event.region, event.day)
            for entry in self.queue.inbox.entries(start[OFFSET], end[OFFSET])
            for event in entry.events
        ]
        if not rows:
            return []
        count = min(self.tasks, max(1, len(rows) // 500))  # small batches: one task
        return [EventsPartition(rows[i::count]) for i in range(count)]

    def commit(self, end: dict[str, int]) -> None:
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
