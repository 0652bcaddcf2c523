"""`run --sqs-queue-url`: a Structured Streaming source of CloudTrail log objects named by SQS
notifications, read with boto3 (no S3 filesystem needed), as a Python data source.

On the driver, ``latestOffset`` takes the queue's messages into the inbox
(:mod:`loader.sources.sqs`) and answers with the inbox's last entry; ``partitions`` splits a
batch's objects over tasks; ``commit`` deletes the messages of committed entries. On the
executors, ``read`` fetches each object and yields its path and text. With ``--source`` the
history under it is taken in first, oldest first, then the queue is followed.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMAT = "tsa_cloudtrail_sqs"
SCHEMA = "file_path STRING, content STRING"


class ObjectsPartition(InputPartition):
    def __init__(self, objects: list[str]) -> None:
        super().__init__(objects)
        self.objects = objects


class SqsLogSource(DataSource):
    """Options (keys arrive lower-cased): queue_url, inbox, history (a folder or s3:// prefix),
    max_files, partitions, visibility_timeout."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802 (pyspark's name)
        return SqsLogReader(dict(self.options))


class SqsLogReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.max_files = int(options.get("max_files") or 0)
        self.tasks = max(1, int(options.get("partitions") or 2))
        self.target: int | None = None
        self._inbox: Any = None
        self._queue: Any = None

    def __getstate__(self) -> dict[str, Any]:  # executors get the options, not the clients
        return {**self.__dict__, "_inbox": None, "_queue": None}

    # --- driver side -----------------------------------------------------------------------

    @property
    def inbox(self) -> Any:
        if self._inbox is None:
            from loader.sources.sqs import Inbox

            self._inbox = Inbox(self.options["inbox"])
        return self._inbox

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from loader.sources.sqs import Queue

            timeout = int(self.options.get("visibility_timeout") or 900)
            self._queue = Queue(self.options["queue_url"], self.inbox, timeout)
        return self._queue

    def _take_history(self) -> None:
        from loader.sources.sqs import history_objects

        history = self.options.get("history")
        if history and not self.inbox.history_done:
            chunk = self.max_files or 500
            added = self.inbox.add_history(history_objects(history), chunk)
            _say(f"sqs: history under {history}: {added:,} log files to replay first")

    def initialOffset(self) -> dict[str, int]:  # noqa: N802
        return {"entry": 0}

    def prepareForTriggerAvailableNow(self) -> None:  # noqa: N802
        self._take_history()
        report = self.queue.drain()
        _say(report.render())
        self.target = self.inbox.last

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:  # noqa: N802
        if self.target is None:
            self._take_history()
            report = self.queue.receive()
            if report.messages:
                _say(report.render())
        last = self.inbox.last if self.target is None else self.target
        begin = start["entry"]
        max_files = limit.max_files if isinstance(limit, ReadMaxFiles) else 0
        if isinstance(limit, ReadAllAvailable) or not max_files or last <= begin:
            return {"entry": max(last, begin)}
        end, files = begin, 0
        for entry in self.inbox.entries(begin, last):  # at least one entry, then up to the limit
            if end > begin and files + len(entry.objects) > max_files:
                break
            end, files = entry.number, files + len(entry.objects)
        return {"entry": end}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        return ReadMaxFiles(self.max_files) if self.max_files else ReadAllAvailable()

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        objects = [
            url for entry in self.inbox.entries(start["entry"], end["entry"])
            for url in entry.objects
        ]  # fmt: skip
        count = min(self.tasks, len(objects))
        return [ObjectsPartition(objects[i::count]) for i in range(count)]

    def commit(self, end: dict[str, int]) -> None:
        self.inbox.commit(end["entry"], self.queue.delete_handles)

    # --- executor side ---------------------------------------------------------------------

    def read(self, partition: InputPartition) -> Iterator[tuple[str, str]]:
        client = None
        for url in partition.objects:  # type: ignore[attr-defined]
            try:
                if url.startswith("s3://"):
                    if client is None:
                        from loader.s3util import s3_client

                        client = s3_client()
                    bucket, _, key = url[len("s3://") :].partition("/")
                    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                else:
                    with open(url, "rb") as handle:
                        data = handle.read()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                text = data.decode("utf-8")
            except Exception as exc:  # a file that cannot be read must not stop the others
                _say(f"sqs: {url}: cannot read, skipped: {type(exc).__name__}: {exc}")
                continue
            yield (url, text)


def commit_finished(query: Any, inbox: str, queue_url: str) -> None:
    """Once the query has ended: commit what its last batch committed. Spark tells a source
    about a batch's commit only when it plans the next one, which a query that stopped (``--once``
    or a signal) never does; without this, those messages would wait for the next start."""
    import json

    from loader.sources.sqs import Inbox, Queue

    progress = query.lastProgress or {}
    for source in progress.get("sources", []):
        end = source.get("endOffset")
        end = json.loads(end) if isinstance(end, str) else end
        if isinstance(end, dict) and isinstance(end.get("entry"), int):
            box = Inbox(os.path.abspath(inbox))
            box.commit(end["entry"], Queue(queue_url, box).delete_handles)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def stream_sqs_events(
    spark: SparkSession,
    queue_url: str,
    inbox: str,
    history: str | None = None,
    max_files: int | None = None,
    visibility_timeout: int = 900,
) -> DataFrame:
    """A streaming DataFrame of the events in the log objects the queue announces, typed
    exactly like the ``cloudtrail`` view (after the history under ``history``)."""
    from pyspark.sql import functions as F

    from loader.sources.layout import with_layout_columns
    from loader.stream.source import RAW_VIEW
    from loader.tables.cloudtrail_ddl import events_query

    spark.dataSource.register(SqsLogSource)
    options = {
        "queue_url": queue_url,
        "inbox": os.path.abspath(inbox),
        "partitions": str(spark.sparkContext.defaultParallelism),
        "visibility_timeout": str(visibility_timeout),
    }
    if history:
        options["history"] = history
    if max_files:
        options["max_files"] = str(max_files)
    raw = spark.readStream.format(FORMAT).options(**options).load()
    records = F.from_json("content", "Records ARRAY<STRING>").getField("Records")
    raw = raw.select(records.alias("Records"), "file_path")
    with_layout_columns(raw, F.col("file_path")).createOrReplaceTempView(RAW_VIEW)
    return spark.sql(events_query(RAW_VIEW, file_path="file_path"))
