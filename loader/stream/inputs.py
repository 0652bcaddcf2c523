"""What `run` reads: log files (a folder, S3, or S3 notifications on SQS), the materialized
history, and CloudTrail events from EventBridge on SQS, as one stream of events."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from loader.errors import ConfigError

if TYPE_CHECKING:
    from loader.config import Settings


@dataclass
class Inputs:
    events: Any  # the streaming DataFrame of events
    replay: Any = None  # the materialized history, when --history-table
    finished: list[Callable[[object], None]] = field(default_factory=list)

    def observed(self, query: object) -> None:
        """After Spark commits a batch: the queue sources delete what it took in."""
        for commit in self.finished:
            commit(query)


def check_inputs(settings: Settings) -> None:
    """Refuse a combination `run` cannot follow, before Spark starts."""
    if not (settings.source or settings.sqs_queue_url or settings.events_queue_url):
        raise ConfigError("run needs --source, --sqs-queue-url, --events-queue-url or several")
    if settings.history_table and (settings.sqs_queue_url or not settings.source):
        raise ConfigError("--history-table works with --source (a folder or s3:// prefix of logs)")


def inbox(settings: Settings, given: str | None, name: str) -> str:
    """An SQS source's inbox: a local folder (the driver's Python writes it)."""
    if given:
        return given
    checkpoint = settings.checkpoint
    parsed = urlparse(checkpoint)
    if parsed.scheme == "file":
        return os.path.join(parsed.path, name)
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise ConfigError(
            f"--checkpoint {checkpoint} is not a local folder: give --{name}-inbox a local "
            f"folder on the driver for the {name} source's inbox"
        )
    return os.path.join(checkpoint, name)


def open_inputs(spark: Any, settings: Settings, visibility: int) -> Inputs:
    """The events stream of every source the settings name, unioned."""
    from loader.stream.events_source import commit_finished_events, stream_queue_events
    from loader.stream.history import history
    from loader.stream.source import stream_events
    from loader.stream.sqs_source import commit_finished, stream_sqs_events

    inputs = Inputs(events=None)
    if settings.sqs_queue_url:
        taken = inbox(settings, settings.sqs_inbox, "sqs")
        inputs.events = stream_sqs_events(
            spark, settings.sqs_queue_url, taken, settings.source, settings.max_files, visibility
        )
        inputs.finished.append(
            partial(commit_finished, inbox=taken, queue_url=settings.sqs_queue_url)
        )
    elif settings.source:
        if settings.history_table:
            inputs.replay = history(spark, settings.history_table, settings.source,
                                    settings.checkpoint)  # fmt: skip
            print(f"history: {len(inputs.replay.days)} day(s) from {inputs.replay.table}",
                  flush=True)  # fmt: skip
        raw = inputs.replay.raw_filter() if inputs.replay else None
        inputs.events = stream_events(spark, settings.source, settings.max_files, raw)
    if settings.events_queue_url:  # the fast path beside the files, the complete record
        taken = inbox(settings, settings.events_inbox, "events")
        queued = stream_queue_events(spark, settings.events_queue_url, taken, visibility)
        inputs.events = queued if inputs.events is None else inputs.events.unionByName(queued)
        inputs.finished.append(partial(commit_finished_events, inbox=taken,
                                       queue_url=settings.events_queue_url))  # fmt: skip
    return inputs
