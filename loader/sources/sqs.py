"""The SQS source's bookkeeping: what it took in, kept on disk until Spark has committed it.

The **inbox** is a local folder (by default ``CHECKPOINT/sqs``):

- ``entries/NNNNNNNNNNNN.json``: one per message with new log objects (or per chunk of the
  history listing): the objects, and the message's id and receipt handle. An entry's number
  is the source's offset, so a batch Spark replays after a crash reads exactly the objects it
  read before. Entries are removed once Spark has committed them.
- ``seen.log``: every object taken in, with when; a notification for an object already seen
  (in the last ``SEEN_DAYS``) adds nothing, so duplicate notifications never duplicate events.
- ``rejected.jsonl``: messages that cannot be used (not JSON, no object, object gone), with the
  reason and the whole body; they are deleted from the queue once recorded here.
- ``committed``: the last entry Spark committed; ``history.done``: the ``--source`` listing
  is complete.

A message is deleted from the queue only after the batch holding its objects is committed (or
at once when it carries nothing to read). A runner killed in between leaves the message in
the queue; it comes back after its visibility timeout and is found to be a duplicate.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loader.errors import LoaderError
from loader.sources.inbox import EntryFolder, write_atomically
from loader.sources.notifications import LOG_FILE, ObjectRef, parse_notification

SEEN_DAYS = 7
RECEIVE_BATCH = 10  # SQS's maximum per ReceiveMessage
MAX_RECEIVES = 100  # per intake: at most 1,000 messages before a batch is planned
HISTORY_CHUNK = 500
_STAMP = re.compile(r"_(\d{8}T\d{4}Z)_")


@dataclass
class Entry:
    number: int
    objects: list[str]  # s3:// URLs or local paths
    message_id: str | None = None
    receipt_handle: str | None = None

    def content(self) -> dict[str, Any]:
        return {"objects": self.objects, "message_id": self.message_id,
                "receipt_handle": self.receipt_handle}  # fmt: skip


@dataclass
class IntakeReport:
    messages: int = 0
    objects: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)

    def render(self) -> str:
        line = (
            f"sqs: {self.messages} messages, {self.objects} new log objects, "
            f"{self.duplicates} already seen, {self.ignored} without log objects, "
            f"{len(self.rejected)} rejected"
        )
        for reason in self.rejected:
            line += f"\n  rejected: {reason}"
        for reason in self.retry:
            line += f"\n  left in the queue for a retry: {reason}"
        return line


class Inbox(EntryFolder[Entry]):
    """The folder described in the module's docstring."""

    what = "SQS inbox"

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.seen: set[str] = set()
        self._load_seen()

    def add(self, objects: list[str], message_id: str | None = None,
            receipt_handle: str | None = None) -> Entry:  # fmt: skip
        """Write an entry durably (temporary file, fsync, rename), then note its objects."""
        entry = Entry(self.last + 1, objects, message_id, receipt_handle)
        self._store(entry.number, entry.content())
        self._note_seen(objects)
        return entry

    def _decode(self, number: int, stored: dict[str, Any]) -> Entry:
        return Entry(number, stored["objects"], stored.get("message_id"),
                     stored.get("receipt_handle"))  # fmt: skip

    def _handles(self, entry: Entry) -> list[str]:
        return [entry.receipt_handle] if entry.receipt_handle else []

    # --- seen objects and rejected messages ------------------------------------------------

    def _load_seen(self) -> None:
        path, cutoff = os.path.join(self.root, "seen.log"), time.time() - SEEN_DAYS * 86400
        kept = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    stamp, _, url = line.rstrip("\n").partition("\t")
                    if url and float(stamp) >= cutoff:
                        kept.append(line)
                        self.seen.add(url)
            write_atomically(path, "".join(kept))
        for number in self.numbers():  # written before their seen lines, should a crash fall
            self.seen.update(self.entry(number).objects)  # in between

    def _note_seen(self, objects: Iterable[str]) -> None:
        now = time.time()
        with open(os.path.join(self.root, "seen.log"), "a", encoding="utf-8") as handle:
            handle.writelines(f"{now:.0f}\t{url}\n" for url in objects)
        self.seen.update(objects)

    # --- the --source history --------------------------------------------------------------

    @property
    def history_done(self) -> bool:
        return os.path.exists(os.path.join(self.root, "history.done"))

    def add_history(self, objects: Iterable[str], chunk: int = HISTORY_CHUNK) -> int:
        """The history's log objects not yet taken in, oldest first, as entries of ``chunk``."""
        new = sorted((url for url in objects if url not in self.seen), key=_time_order)
        for start in range(0, len(new), chunk):
            self.add(new[start : start + chunk])
        write_atomically(os.path.join(self.root, "history.done"), str(len(new)))
        return len(new)


def _time_order(url: str) -> tuple[str, str]:
    """CloudTrail names carry the time they were written: older files first."""
    stamp = _STAMP.search(url.rsplit("/", 1)[-1])
    return (stamp.group(1) if stamp else "", url)


# --- the queue --------------------------------------------------------------------------------


class Queue:
    """Receives notifications into an :class:`Inbox`, and deletes what the inbox is done with.

    The clients honour the standard credential chain, ``AWS_PROFILE``, the region settings and
    ``AWS_ENDPOINT_URL``; the queue's region is taken from its URL when it has one."""

    def __init__(self, url: str, inbox: Inbox, visibility_timeout: int = 900,
                 check_objects: bool = True) -> None:  # fmt: skip
        self.url = url
        self.inbox = inbox
        self.visibility_timeout = visibility_timeout
        self.check_objects = check_objects
        self._sqs: Any = None
        self._s3: Any = None

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            import boto3

            region = re.match(r"https://sqs\.([a-z0-9-]+)\.", self.url)
            self._sqs = boto3.client("sqs", **({"region_name": region.group(1)} if region else {}))
        return self._sqs

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from loader.s3util import s3_client

            self._s3 = s3_client()
        return self._s3

    def receive(self, wait_seconds: int = 0, max_receives: int = MAX_RECEIVES) -> IntakeReport:
        """Take in what the queue holds now (up to ``max_receives`` × 10 messages)."""
        report = IntakeReport()
        for _ in range(max_receives):
            messages = self._receive(wait_seconds)
            if not messages:
                break
            finished = []
            for message in messages:
                report.messages += 1
                if self._take(message, report):
                    finished.append(message)
            self._delete(finished)
        return report

    def drain(self) -> IntakeReport:
        """Everything the queue holds: receive until two long polls in a row come back empty."""
        total, empty = IntakeReport(), 0
        while empty < 2:
            report = self.receive(wait_seconds=1)
            empty = empty + 1 if report.messages == 0 else 0
            _merge(total, report)
        return total

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=RECEIVE_BATCH,
                WaitTimeSeconds=wait_seconds, VisibilityTimeout=self.visibility_timeout,
            )  # fmt: skip
        except (BotoCoreError, ClientError) as exc:
            raise LoaderError(f"{self.url}: cannot receive SQS messages: {exc}") from exc
        return answer.get("Messages", [])

    def _take(self, message: dict[str, Any], report: IntakeReport) -> bool:
        """Record one message; True when it can be deleted at once (nothing left to read)."""
        body, message_id = message.get("Body", ""), message.get("MessageId")
        notice = parse_notification(body)
        logs = notice.log_objects
        if not logs:
            if notice.problems:
                reason = f"message {message_id}: " + "; ".join(notice.problems)
                self.inbox.reject(message_id, body, reason)
                report.rejected.append(reason)
            else:
                report.ignored += 1
            return True
        new = [ref for ref in logs if ref.url not in self.inbox.seen]
        report.duplicates += len(logs) - len(new)
        gone = []
        for ref in list(new) if self.check_objects else []:
            problem = self._check(ref)
            if problem == "retry":
                report.retry.append(f"message {message_id}: {ref.url} could not be checked")
                return False  # left in the queue: it comes back after the visibility timeout
            if problem:
                new.remove(ref)
                gone.append(f"{ref.url}: {problem}")
        problems = notice.problems + gone
        if problems:
            reason = f"message {message_id}: " + "; ".join(problems)
            self.inbox.reject(message_id, body, reason)
            report.rejected.append(reason)
        if not new:
            return True
        self.inbox.add([ref.url for ref in new], message_id, message.get("ReceiptHandle"))
        report.objects += len(new)
        return False

    def _check(self, ref: ObjectRef) -> str | None:
        """None when the object is there; a reason when it never will be; "retry" otherwise."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return "object not found"
            if code in ("403", "AccessDenied"):
                return "access denied"
            return "retry"
        except BotoCoreError:
            return "retry"
        return None

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        self.delete_handles([m["ReceiptHandle"] for m in messages if m.get("ReceiptHandle")])

    def delete_handles(self, handles: list[str]) -> None:
        """Delete messages; a handle SQS no longer accepts (the message came back after its
        visibility timeout and was received again) is left: that copy will be a duplicate."""
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(handles), RECEIVE_BATCH):
            chunk = handles[start : start + RECEIVE_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
            try:
                answer = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                print(f"sqs: cannot delete messages (they will come back as duplicates): {exc}",
                      file=sys.stderr)  # fmt: skip
                continue
            for failed in answer.get("Failed", []):
                print(f"sqs: message not deleted ({failed.get('Code')}); it will come back as "
                      "a duplicate", file=sys.stderr)  # fmt: skip


def _merge(total: IntakeReport, report: IntakeReport) -> None:
    total.messages += report.messages
    total.objects += report.objects
    total.duplicates += report.duplicates
    total.ignored += report.ignored
    total.rejected += report.rejected
    total.retry += report.retry


def history_objects(source: str) -> Iterator[str]:
    """The CloudTrail log files under a folder or s3:// prefix, as paths or s3:// URLs."""
    from loader.s3util import is_s3
    from loader.sources.listing import list_files
    from loader.sources.s3sync import list_log_objects

    if is_s3(source):
        for item in list_log_objects(source):
            if LOG_FILE.search(item.key):
                yield f"s3://{item.bucket}/{item.key}"
        return
    for item in list_files(source):
        if LOG_FILE.search(item.path):
            yield os.path.abspath(item.path)
