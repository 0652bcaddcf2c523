"""What an SQS source took in and Spark has not committed yet: numbered entries in a local
folder (the stream's offsets), written durably before Spark plans a batch from them, and
deleted with their messages once Spark commits it; and the messages refused, with why.

    ROOT/entries/000000000001.json    one intake's take (the stream's offset 1)
    ROOT/committed                    the last entry Spark committed
    ROOT/rejected.jsonl               each refused message: when, its id, the reason, the body

The SQS file source (:mod:`loader.sources.sqs`) and the events source
(:mod:`loader.sources.events`) keep their inboxes so; an entry's content is theirs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Generic, TypeVar

from loader.errors import LoaderError

EntryT = TypeVar("EntryT")


def write_atomically(path: str, content: str) -> None:
    """Write ``path`` whole or not at all: a temporary file, fsync, rename."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class EntryFolder(Generic[EntryT]):
    """The folder above; a subclass says what an entry holds (:meth:`_decode`), which receipt
    handles committing it deletes (:meth:`_handles`) and what else it forgets (:meth:`_done`)."""

    what = "inbox"  # named in errors

    def __init__(self, root: str) -> None:
        self.root = root
        self._entries = os.path.join(root, "entries")
        os.makedirs(self._entries, exist_ok=True)

    def _path(self, number: int) -> str:
        return os.path.join(self._entries, f"{number:012d}.json")

    def numbers(self) -> list[int]:
        return sorted(int(n[:-5]) for n in os.listdir(self._entries) if n.endswith(".json"))

    @property
    def committed(self) -> int:
        try:
            with open(os.path.join(self.root, "committed"), encoding="utf-8") as handle:
                return int(handle.read().strip() or 0)
        except FileNotFoundError:
            return 0

    @property
    def last(self) -> int:
        numbers = self.numbers()
        return max(numbers[-1] if numbers else 0, self.committed)

    def _store(self, number: int, content: dict[str, Any]) -> None:
        write_atomically(self._path(number), json.dumps(content))

    def entry(self, number: int) -> EntryT:
        try:
            with open(self._path(number), encoding="utf-8") as handle:
                stored = json.load(handle)
        except FileNotFoundError:
            raise LoaderError(
                f"{self._path(number)}: the {self.what} lost an entry the checkpoint still "
                "needs (was the inbox folder deleted or replaced?)"
            ) from None
        return self._decode(number, stored)

    def entries(self, after: int, upto: int) -> list[EntryT]:
        return [self.entry(n) for n in range(after + 1, upto + 1)]

    def commit(self, upto: int, delete: Any) -> None:
        """Spark committed every entry up to ``upto``: DELETE (a list of receipt handles)
        their messages, then the entries."""
        numbers = [n for n in self.numbers() if n <= upto]
        done = [self.entry(n) for n in numbers]
        delete([handle for entry in done for handle in self._handles(entry)])
        write_atomically(os.path.join(self.root, "committed"), str(max(upto, self.committed)))
        for number, entry in zip(numbers, done, strict=True):
            os.remove(self._path(number))
            self._done(entry)

    def reject(self, message_id: str | None, body: str, reason: str) -> None:
        """Keep a refused message aside, with why (its message is deleted: it never fits)."""
        record = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "message_id": message_id, "reason": reason, "body": body}  # fmt: skip
        with open(os.path.join(self.root, "rejected.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rejected(self) -> list[dict[str, Any]]:
        path = os.path.join(self.root, "rejected.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def _decode(self, number: int, stored: dict[str, Any]) -> EntryT:
        raise NotImplementedError

    def _handles(self, entry: EntryT) -> list[str]:
        raise NotImplementedError

    def _done(self, entry: EntryT) -> None:
        """An entry's messages were deleted and the entry removed."""
