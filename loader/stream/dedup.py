"""Each event counts once, whichever way it came: the runner's deduplication.

With ``--events-queue-url`` the same CloudTrail event arrives twice: within seconds from the
EventBridge queue, minutes later in the trail's log file (and SQS may deliver a message twice).
The observe query drops the second arrival before any rule sees it, so no alert is raised
twice and no profile or baseline counts it twice.

- **The key** is the event's account and ``eventID`` (eventIDs are not unique across accounts
  in practice), as a 64-bit hash (``xxhash64``): two different events of a day of 100 events a
  second share a key with a probability of about 1 in 500,000 per day.
- **The files are the record**: their events are counted as the files hold them, as `detect`
  counts them (real trails and samples do hold the same eventID twice; both copies count). A
  queue copy counts in place of its file copy until that arrives, which is then dropped; a
  queue copy of an event already counted (from a file or the queue) is dropped. So `run` with
  the queue raises what `detect` over the files alone raises.
- **The window** (``--dedup-window``, 24 hours by default, longer than CloudTrail's delivery
  delay of a file) is in event time: a key is remembered while its ``eventTime`` is within the
  window of the clock (the newest event time the runner has seen).
- **An event older than the window**: from a log file, it is counted as it comes (nothing in
  the files is ever dropped) and not remembered; from the queue, it is skipped and counted in
  the status line, since by then its file, the complete record, has delivered it. A file copy
  delivered more than the window after its queue copy counts a second time: make the window
  longer than the longest delay you expect from the trail.

The keys whose state a batch changed are written beside its observations
(``observations/batch-N/_seen.npy``), in the rename that makes the batch final, so a batch
replayed after a crash sees exactly the keys of the batches before it. The driver holds the
window's keys in memory (17 bytes a key: 8.6 million keys for a day of 100 events a second is
about 150 MB).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loader.sources.events import PATH_SCHEME

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from loader.stream.checkpoint import Folder

SEEN_FILE = "_seen.npy"
DEFAULT_WINDOW = 24 * 3600.0
IS_QUEUE = f"startswith(source_file, '{PATH_SCHEME}')"
MAX_QUEUE_IDS = 100_000  # queue events a status row names (for the latency by source)
_MERGE_AT = 0.1  # pending keys are merged into the sorted base when they reach 10% of it


UNKNOWN, PENDING, FILED = 0, 1, 2  # a key's state: its queue copy awaits its file copy; filed


class SeenKeys:
    """Keys with their event time (epoch seconds) and state, for lookups of whole batches: a
    sorted base searched by bisection, plus the changes since the last merge (a dict)."""

    def __init__(self) -> None:
        self.keys = np.empty(0, np.int64)
        self.times = np.empty(0, np.int64)
        self.states = np.empty(0, np.int8)
        self._changes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        self._merge()
        return len(self.keys)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The state of each key (UNKNOWN when not remembered)."""
        states = np.zeros(len(keys), np.int8)
        if len(self.keys) and len(keys):
            at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
            hit = self.keys[at] == keys
            states[hit] = self.states[at[hit]]
        if self._changes:
            for i, key in enumerate(keys.tolist()):
                change = self._changes.get(key)
                if change is not None:
                    states[i] = change[1]
        return states

    def update(self, keys: np.ndarray, times: np.ndarray, states: np.ndarray) -> None:
        for key, time, state in zip(keys.tolist(), times.tolist(), states.tolist(), strict=True):
            self._changes[key] = (time, state)
        if len(self._changes) > max(10_000, _MERGE_AT * len(self.keys)):
            self._merge()

    def expire(self, before: int) -> None:
        """Forget keys whose event time is before ``before`` (epoch seconds)."""
        self._merge()
        keep = self.times >= before
        if not keep.all():
            self.keys, self.times, self.states = (
                self.keys[keep],
                self.times[keep],
                self.states[keep],
            )

    def _merge(self) -> None:
        if not self._changes:
            return
        n = len(self._changes)
        new_keys = np.fromiter(self._changes.keys(), np.int64, n)
        new_times = np.fromiter((v[0] for v in self._changes.values()), np.int64, n)
        new_states = np.fromiter((v[1] for v in self._changes.values()), np.int8, n)
        keys = np.concatenate([self.keys, new_keys])
        times = np.concatenate([self.times, new_times])
        states = np.concatenate([self.states, new_states])
        order = np.argsort(keys, kind="stable")  # a change comes after the base's entry
        keys, times, states = keys[order], times[order], states[order]
        last = np.r_[keys[1:] != keys[:-1], True]
        self.keys, self.times, self.states = keys[last], times[last], states[last]
        self._changes = {}


def encode(keys: np.ndarray, times: np.ndarray, states: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    stored = np.stack([keys.astype(np.int64), times.astype(np.int64), states.astype(np.int64)])
    np.save(buffer, stored, allow_pickle=False)
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stored = np.load(io.BytesIO(data), allow_pickle=False)
    return stored[0], stored[1], stored[2].astype(np.int8)


@dataclass
class Decisions:
    """For the keys of one batch: which copies to drop, and the keys' new states."""

    drop_files: np.ndarray  # per key: how many of its file copies to drop (0 or 1)
    keep_queue: np.ndarray  # per key: keep one queue copy
    special: np.ndarray  # per key: anything to drop at all
    states: np.ndarray  # per key: its state after the batch
    changed: np.ndarray  # per key: the state changed


def decide(before: np.ndarray, files: np.ndarray, queued: np.ndarray) -> Decisions:
    """Per key: its state ``before`` the batch and how many copies the batch holds from files
    and from the queue. The files are the record and are counted as they hold an event (as
    `detect` counts them, copies included); a queue copy counts in their place until the first
    file copy arrives, which is then dropped, and a queue copy of a key already counted is
    dropped."""
    pending = before == PENDING
    drop_files = (pending & (files > 0)).astype(np.int64)
    keep_queue = (queued > 0) & (before == UNKNOWN) & (files == 0)
    special = (drop_files > 0) | (queued > keep_queue.astype(np.int64))
    states = np.where(files > 0, FILED, np.where(keep_queue, PENDING, before)).astype(np.int8)
    return Decisions(drop_files, keep_queue, special, states, states != before)


@dataclass
class Outcome:
    """What deduplication did to one batch."""

    events: DataFrame  # the batch without the copies already counted (cached when changed)
    duplicates: int = 0  # copies dropped: counted in an earlier batch, or twice in this one
    stale: int = 0  # queue events older than the window, skipped
    queue: int = 0  # events from the queue in the batch, before deduplication
    new_keys: bytes = b""  # what to write as the batch's SEEN_FILE
    queue_ids: list[str] = field(default_factory=list)  # eventIDs of the queue events kept

    def summary(self) -> dict[str, Any]:
        """For the batch's status line."""
        return {"queue": self.queue, "duplicates": self.duplicates, "stale": self.stale,
                "queue_ids": self.queue_ids}  # fmt: skip


class Deduplicator:
    """The runner's memory of keys (one per observe query, on the driver)."""

    def __init__(self, folder: Folder, window: float = DEFAULT_WINDOW) -> None:
        self.folder = folder
        self.window = window
        self.seen = SeenKeys()
        self.loaded_upto = 0  # the batches below this number are in memory

    def _load(self, batch: int, oldest: int) -> None:
        """Bring the keys of every written batch before ``batch`` into memory, in order."""
        from loader.stream.checkpoint import batch_folder

        if self.loaded_upto >= batch:
            return
        low, high = batch_folder(self.loaded_upto), batch_folder(batch)
        for name in sorted(n for n in self.folder.names() if low <= n < high):
            if name.startswith("batch-") and self.folder.exists(f"{name}/{SEEN_FILE}"):
                keys, times, states = decode(self.folder.read_bytes(f"{name}/{SEEN_FILE}"))
                keep = times >= oldest
                self.seen.update(keys[keep], times[keep], states[keep])
        self.loaded_upto = batch

    def remember(self, batch: int, new_keys: bytes) -> None:
        """The batch is final: its keys join the memory (the next batch's load skips it)."""
        if self.loaded_upto == batch:
            if new_keys:
                self.seen.update(*decode(new_keys))
            self.loaded_upto = batch + 1

    def apply(self, events: DataFrame, batch: int, clock: dt.datetime | None) -> Outcome:
        """``events`` (cached, with ``eventid``, ``account``, ``eventtime`` and ``source_file``)
        without the copies of events already counted. One Spark job reads the keys of the
        batch's recent events and of its queue events; a second, only when something is to be
        dropped, filters the batch."""
        if clock is None:
            return Outcome(events)
        oldest = int(clock.replace(tzinfo=dt.timezone.utc).timestamp() - self.window)
        self._load(batch, oldest)
        self.seen.expire(oldest)
        marked = events.selectExpr(
            "*", "xxhash64(account, eventid) AS __key",
            "unix_seconds(CAST(eventtime AS TIMESTAMP)) AS __time", f"{IS_QUEUE} AS __queue",
        )  # fmt: skip
        table = marked.where(
            f"__queue OR (eventid IS NOT NULL AND __time >= {oldest})"
        ).selectExpr(
            "__key", "coalesce(__time, 0) AS __time", "__queue", "eventid IS NULL AS __no_id",
            "CASE WHEN __queue THEN eventid END AS __id",
        ).toArrow()  # fmt: skip

        def column(name: str) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False)

        row_keys, row_times = column("__key").astype(np.int64), column("__time").astype(np.int64)
        queued_rows = column("__queue").astype(bool)
        stale_rows = queued_rows & (row_times < oldest)
        recent = (row_times >= oldest) & ~column("__no_id").astype(bool)
        keys, first, inverse = np.unique(row_keys[recent], return_index=True, return_inverse=True)
        from_queue = queued_rows[recent]
        queued = np.bincount(inverse, weights=from_queue, minlength=len(keys)).astype(np.int64)
        files = np.bincount(inverse, minlength=len(keys)).astype(np.int64) - queued
        times = row_times[recent][first]
        decided = decide(self.seen.lookup(keys), files, queued)
        changed = decided.changed
        new_keys = b""
        if changed.any():
            new_keys = encode(keys[changed], times[changed], decided.states[changed])
        kept_queue = from_queue & decided.keep_queue[inverse]
        ids = column("__id")[recent][kept_queue]
        outcome = Outcome(
            events, queue=int(queued_rows.sum()), stale=int(stale_rows.sum()),
            new_keys=new_keys, queue_ids=sorted({str(i) for i in ids[:MAX_QUEUE_IDS]}),
        )  # fmt: skip
        special = decided.special
        if not special.any() and not outcome.stale:
            return outcome
        outcome.duplicates = int(decided.drop_files.sum() + (queued - decided.keep_queue).sum())
        outcome.events = _without_copies(marked, oldest, keys[special], decided, special)
        return outcome


def _without_copies(
    marked: DataFrame, oldest: int, keys: np.ndarray, decided: Any, special: np.ndarray
) -> DataFrame:
    """The batch (``marked`` with its key columns) keeping, for each of ``keys``, the copies
    ``decided`` keeps, and no queue event older than the window; cached."""
    from pyspark.sql import functions as F

    rows = zip(keys.tolist(), decided.drop_files[special].tolist(),
               decided.keep_queue[special].tolist(), strict=True)  # fmt: skip
    plan = marked.sparkSession.createDataFrame(
        list(rows), "__key BIGINT, __drop_files BIGINT, __keep_queue BOOLEAN"
    )
    current = marked.where(f"NOT (__queue AND __time < {oldest})")
    untouched = current.join(F.broadcast(plan), "__key", "left_anti")
    # the copies of a key to keep: file copies after the first __drop_files of them (by
    # file), and one queue copy when __keep_queue
    chosen = current.join(F.broadcast(plan), "__key").selectExpr(
        "*", "row_number() OVER (PARTITION BY __key, __queue ORDER BY source_file) AS __n"
    ).where(
        "(NOT __queue AND __n > __drop_files) OR (__queue AND __keep_queue AND __n = 1)"
    )  # fmt: skip
    helpers = ("__key", "__time", "__queue", "__n", "__drop_files", "__keep_queue")
    result = untouched.unionByName(chosen.drop("__n", "__drop_files", "__keep_queue"))
    return result.drop(*helpers).persist()
