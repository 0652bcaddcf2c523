"""The runner's checkpoint folder: files on the checkpoint's file system (local, HDFS, ...)
through Hadoop's API, cleaning what a killed runner left, and the engine version it holds.

    CHECKPOINT/engine.json     which observation format the folder holds
    CHECKPOINT/observe/        the observe query's Spark checkpoint
    CHECKPOINT/observations/   batch-N folders of observations (Parquet), one per observe batch
    CHECKPOINT/state/          the apply query's Spark checkpoint and state store
    CHECKPOINT/history.json    with --history-table: the days replayed from the table
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.errors import TsaError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

OBSERVE, OBSERVATIONS, APPLY = "observe", "observations", "state"
STARTS_FILE = "_starts.json"
ENGINE_FILE = "engine.json"
# 3: observations carry the clock (baselines), account-wide profiles are kept per account
# 2: observations carry entity and value, one row per rule, key, entity, value and day, made by
# the fused rule engine (1: one query per rule, entity and value read from the row)
ENGINE_VERSION = 3


class Folder:
    """A folder on the checkpoint's file system (local, HDFS, ...) through Hadoop's API."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path(path)
        self._fs = self._path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        self._jvm = jvm
        self.path = path

    def child(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def make(self) -> None:
        self._fs.mkdirs(self._path)

    def exists(self, name: str) -> bool:
        return bool(self._fs.exists(self._jvm.org.apache.hadoop.fs.Path(self.child(name))))

    def delete(self, name: str) -> None:
        self._fs.delete(self._jvm.org.apache.hadoop.fs.Path(self.child(name)), True)

    def rename(self, name: str, new: str) -> None:
        path = self._jvm.org.apache.hadoop.fs.Path
        if not self._fs.rename(path(self.child(name)), path(self.child(new))):
            raise TsaError(f"{self.child(name)}: cannot rename to {new}")

    def names(self) -> list[str]:
        if not self._fs.exists(self._path):
            return []
        return [s.getPath().getName() for s in self._fs.listStatus(self._path)]

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode()

    def read_bytes(self, name: str) -> bytes:
        stream = self._fs.open(self._jvm.org.apache.hadoop.fs.Path(self.child(name)))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def write_text(self, name: str, content: str) -> None:
        self.write_bytes(name, content.encode())

    def write_bytes(self, name: str, content: bytes) -> None:
        stream = self._fs.create(self._jvm.org.apache.hadoop.fs.Path(self.child(name)), True)
        try:
            stream.write(bytearray(content))
        finally:
            stream.close()


# Spark writes a checkpoint log file as `.NAME.UUID.tmp` (and its `..NAME.UUID.tmp.crc`), then
# renames it. A runner killed between the two leaves the temp file; Spark 4 then refuses to
# start the query ("checkpoint location should be empty on batch 0") although nothing was
# committed. Such a file never became part of the log, so removing it loses nothing.
_UNFINISHED_WRITE = re.compile(r"^\.\.?\d+(?:\.compact)?\.[0-9a-fA-F-]{36}\.tmp(?:\.crc)?$")
_LOGS = ("offsets", "commits")


def remove_unfinished_writes(spark: SparkSession, checkpoint: str) -> list[str]:
    """Delete what a killed write left in a query checkpoint's offset and commit logs (and
    its sources' logs); returns the paths removed, relative to ``checkpoint``."""
    query = Folder(spark, checkpoint)
    folders = [
        *_LOGS,
        *(f"sources/{name}" for name in Folder(spark, query.child("sources")).names()),
    ]
    removed = []
    for name in folders:
        log = Folder(spark, query.child(name))
        for entry in log.names():
            if _UNFINISHED_WRITE.match(entry):
                log.delete(entry)
                removed.append(f"{name}/{entry}")
    return removed


def batch_folder(batch: int) -> str:
    return f"batch-{batch:09d}"


@dataclass
class Carried:
    """What one observe batch hands the next: where each account-wide profile's learning
    started (per rule and account, None organization-wide) and the newest event time seen."""

    starts: dict[tuple[str, str | None], dt.datetime] = field(default_factory=dict)
    clock: dt.datetime | None = None

    def text(self) -> str:
        return json.dumps({
            # who is None organization-wide, and for events without an account
            "starts": sorted(([rule, who, at.isoformat(sep=" ")]
                              for (rule, who), at in self.starts.items()),
                             key=lambda start: (start[0], start[1] or "", start[2])),
            "clock": self.clock.isoformat(sep=" ") if self.clock else None,
        })  # fmt: skip


def previous_carried(folder: Folder, batch: int) -> Carried:
    """What the last written batch before ``batch`` handed on."""
    done = sorted(n for n in folder.names() if n.startswith("batch-") and n < batch_folder(batch))
    for name in reversed(done):
        if folder.exists(f"{name}/{STARTS_FILE}"):
            stored = json.loads(folder.read_text(f"{name}/{STARTS_FILE}"))
            starts = {
                (rule, who): dt.datetime.fromisoformat(at) for rule, who, at in stored["starts"]
            }
            clock = stored.get("clock")
            return Carried(starts, dt.datetime.fromisoformat(clock) if clock else None)
    return Carried()


def check_engine(root: Folder) -> None:
    """Refuse a checkpoint another version of the runner made (its observations and state
    would be misread); mark a new one with this version.

    Raises:
        TsaError: the checkpoint holds another version's work.
    """
    if root.exists(ENGINE_FILE):
        version = json.loads(root.read_text(ENGINE_FILE)).get("version")
        if version == ENGINE_VERSION:
            return
    elif not any(root.exists(name) for name in (OBSERVE, OBSERVATIONS, APPLY)):
        root.make()
        root.write_text(ENGINE_FILE, json.dumps({"version": ENGINE_VERSION}))
        return
    else:
        version = 1
    raise TsaError(
        f"{root.path}: this checkpoint was made by an earlier version of the runner (format "
        f"{version}, this one reads {ENGINE_VERSION}); start with a new --checkpoint folder "
        "(alerts already in the alerts table are kept, and not raised twice)"
    )


def clean(spark: SparkSession, checkpoint: str, report: Callable[[str], None]) -> None:
    for path in remove_unfinished_writes(spark, checkpoint):
        report(f"checkpoint: removed {checkpoint}/{path}, a write a stopped runner left unfinished")
