"""`run --events-queue-url`: CloudTrail events straight from Amazon EventBridge, through SQS.

CloudTrail sends management events to EventBridge within seconds of the call, minutes before
they reach a log file. An EventBridge rule puts them on an SQS queue; this module takes them in:

- a message body is an EventBridge event (or an SNS notification whose ``Message`` is one)
  whose ``detail-type`` ends in ``via CloudTrail`` ("AWS API Call via CloudTrail", "AWS Console
  Sign In via CloudTrail", "AWS Service Event via CloudTrail", ...) and whose ``detail`` is the
  CloudTrail record itself; the event's ``account`` and ``region`` (else the record's
  ``recipientAccountId`` and ``awsRegion``) and the day of its ``eventTime`` place it like a log
  file's place gives a file's events;
- anything else (not JSON, another detail-type, another source's event, a record without
  ``eventID`` or ``eventTime``) is recorded in ``rejected.jsonl`` with the reason and deleted.

The **inbox** (by default ``CHECKPOINT/events``) has the SQS file source's design
(:mod:`loader.sources.sqs`): ``entries/NNNNNNNNNNNN.json`` holds what one intake took (the
events and their messages' receipt handles); an entry's number is the stream's offset, so a
batch replayed after a crash reads exactly the events it read before; once Spark has committed
the batch, the messages are deleted and the entry removed. A runner killed in between leaves
the messages in the queue: they come back after the visibility timeout and are recognised as
duplicates by the runner (:mod:`loader.stream.dedup`), which counts each event once.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from loader.sources.inbox import EntryFolder
from loader.sources.sqs import MAX_RECEIVES, Queue

CLOUDTRAIL_DETAIL = "via CloudTrail"  # the end of every detail-type CloudTrail sends
PATH_SCHEME = "events-queue://"  # an event's source_file: events-queue://QUEUE/MESSAGE-ID
MAX_DEPTH = 3
INTAKE_SECONDS = 1.0  # a live intake's time budget: what comes after waits for the next batch


@dataclass(frozen=True)
class QueuedEvent:
    """One CloudTrail record from the queue, placed: ``path`` is its source_file."""

    path: str
    record: str  # the CloudTrail record, as JSON text
    account: str
    region: str
    day: str  # yyyy-mm-dd of eventTime


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or "queue"


def parse_event_message(body: str, message_id: str, queue: str) -> QueuedEvent | str:
    """The CloudTrail record an EventBridge message carries, or why there is none."""
    doc: Any = body
    for _ in range(MAX_DEPTH):
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError as exc:
                return f"not JSON ({exc}): {doc.strip()[:40]!r}"
        if not isinstance(doc, dict):
            return f"a JSON {type(doc).__name__}, not an EventBridge event"
        if doc.get("Type") == "Notification" and "Message" in doc:  # an SNS envelope
            doc = doc["Message"]
            continue
        break
    if not isinstance(doc, dict) or "detail-type" not in doc:
        if isinstance(doc, dict) and ("s3Bucket" in doc or "Records" in doc):
            return ("a log file notification, not an event: give this queue to "
                    "--sqs-queue-url")  # fmt: skip
        keys = ", ".join(sorted(doc)[:8]) if isinstance(doc, dict) else ""
        return f"not an EventBridge event (no detail-type; keys: {keys or 'none'})"
    kind, source = doc.get("detail-type"), doc.get("source")
    if not isinstance(kind, str) or not kind.endswith(CLOUDTRAIL_DETAIL):
        return f"not a CloudTrail event: detail-type {kind!r} from {source!r}"
    record = doc.get("detail")
    if not isinstance(record, dict):
        return f"{kind!r} without a detail object"
    missing = [name for name in ("eventID", "eventTime", "eventName") if not record.get(name)]
    if missing:
        return f"{kind!r}: the CloudTrail record has no {', '.join(missing)}"
    day = _day(record["eventTime"])
    if day is None:
        return f"{kind!r}: eventTime {record['eventTime']!r} is not an ISO 8601 time"
    account = doc.get("account") or record.get("recipientAccountId")
    region = doc.get("region") or record.get("awsRegion")
    if not isinstance(account, str) or not account or not isinstance(region, str) or not region:
        return f"{kind!r}: no account or region in the event or its record"
    return QueuedEvent(
        f"{PATH_SCHEME}{queue}/{message_id}", json.dumps(record), account, region, day
    )


def _day(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return None


@dataclass
class EventEntry:
    number: int
    events: list[QueuedEvent]
    handles: list[str]  # the newest receipt handle of each message
    ids: list[str] = field(default_factory=list)  # its messages' ids, in the same order


@dataclass
class EventIntake:
    messages: int = 0
    events: int = 0
    again: int = 0  # received again while their batch runs (their visibility timeout ended)
    rejected: list[str] = field(default_factory=list)

    def render(self) -> str:
        line = (f"events queue: {self.messages} messages, {self.events} CloudTrail events, "
                f"{self.again} already taken in, {len(self.rejected)} rejected")  # fmt: skip
        for reason in self.rejected[:20]:
            line += f"\n  rejected: {reason}"
        if len(self.rejected) > 20:
            line += f"\n  ... and {len(self.rejected) - 20} more (see rejected.jsonl)"
        return line


class EventInbox(EntryFolder[EventEntry]):
    """The folder described in the module's docstring."""

    what = "events inbox"

    def __init__(self, root: str) -> None:
        super().__init__(root)
        # message id -> the uncommitted entry holding its event
        self.pending = {i: n for n in self.numbers() for i in self.entry(n).ids}

    def add(self, events: list[QueuedEvent], handles: list[str], ids: list[str]) -> EventEntry:
        entry = EventEntry(self.last + 1, events, handles, ids)
        self._write(entry)
        self.pending.update((i, entry.number) for i in ids)
        return entry

    def _write(self, entry: EventEntry) -> None:
        content = {"events": [e.__dict__ for e in entry.events], "handles": entry.handles,
                   "ids": entry.ids}  # fmt: skip
        self._store(entry.number, content)

    def renew(self, number: int, handles: dict[str, str]) -> None:
        """Messages of entry ``number`` were received again: their new receipt handles (by
        message id) are the ones SQS honours when the entry is committed."""
        entry = self.entry(number)
        entry.handles = [handles.get(i, h) for i, h in zip(entry.ids, entry.handles, strict=True)]
        self._write(entry)

    def _decode(self, number: int, stored: dict[str, Any]) -> EventEntry:
        events = [QueuedEvent(**e) for e in stored["events"]]
        return EventEntry(number, events, stored["handles"], stored.get("ids", []))

    def _handles(self, entry: EventEntry) -> list[str]:
        return entry.handles

    def _done(self, entry: EventEntry) -> None:
        for message_id in entry.ids:
            self.pending.pop(message_id, None)


class EventQueue:
    """Receives EventBridge messages into an :class:`EventInbox`; deletes what it is done with."""

    def __init__(self, url: str, inbox: EventInbox, visibility_timeout: int = 900) -> None:
        self.url = url
        self.name = queue_name(url)
        self.inbox = inbox
        self._queue = Queue(url, None, visibility_timeout, check_objects=False)  # type: ignore[arg-type]
        self._rejected: set[str] = set()  # message ids recorded as rejected by this process

    def receive(self, wait_seconds: int = 0, max_receives: int = MAX_RECEIVES,
                budget: float | None = INTAKE_SECONDS) -> EventIntake:  # fmt: skip
        """What the queue holds now (up to ``max_receives`` × 10 messages, for at most
        ``budget`` seconds: a queue that fills as fast as it is read must not hold the
        batch back), as one entry. A
        message received again (its visibility timeout ended while its batch ran) keeps the
        newest receipt handle, the one SQS honours when the batch commits."""
        report = EventIntake()
        taken: dict[str, tuple[QueuedEvent, str]] = {}  # message id -> event, receipt handle
        again: dict[int, dict[str, str]] = {}  # entry number -> message id -> newer handle
        started = time.monotonic()
        for _ in range(max_receives):
            if budget is not None and time.monotonic() - started > budget:
                break
            messages = self._queue._receive(wait_seconds)
            if not messages:
                break
            rejected = []
            for message in messages:
                report.messages += 1
                body, message_id = message.get("Body", ""), message.get("MessageId") or "?"
                handle = message["ReceiptHandle"]
                if message_id in taken:
                    report.again += 1
                    taken[message_id] = (taken[message_id][0], handle)
                elif message_id in self.inbox.pending:
                    report.again += 1  # its batch is running, or replays after a crash
                    again.setdefault(self.inbox.pending[message_id], {})[message_id] = handle
                elif message_id in self._rejected:  # its deletion failed: recorded once
                    report.again += 1
                    rejected.append(handle)
                else:
                    got = parse_event_message(body, message_id, self.name)
                    if isinstance(got, str):
                        reason = f"message {message_id}: {got}"
                        self.inbox.reject(message_id, body, reason)
                        self._rejected.add(message_id)
                        report.rejected.append(reason)
                        rejected.append(handle)
                    else:
                        taken[message_id] = (got, handle)
            self._queue.delete_handles(rejected)  # recorded: nothing left to wait for
            # no early stop on a short answer: SQS's short poll samples a subset of its
            # servers, so fewer than 10 messages does not mean the queue is empty
        for number, handles in again.items():
            self.inbox.renew(number, handles)
        if taken:
            ids = list(taken)
            self.inbox.add([taken[i][0] for i in ids], [taken[i][1] for i in ids], ids)
            report.events = len(taken)
        return report

    def drain(self) -> EventIntake:
        """Everything the queue holds: receive until two long polls in a row come back empty."""
        total, empty = EventIntake(), 0
        while empty < 2:
            report = self.receive(wait_seconds=1, budget=None)
            # messages taken in before come back when their visibility timeout ends: not new
            empty = empty + 1 if report.messages == report.again else 0
            total.messages += report.messages
            total.events += report.events
            total.again += report.again
            total.rejected += report.rejected
        return total

    def delete(self, handles: list[str]) -> None:
        self._queue.delete_handles(handles)
