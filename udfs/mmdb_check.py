"""Structural check of a MaxMind DB file before any worker uses it.

Opening a damaged .mmdb often succeeds: the damage shows only when a lookup walks into it, deep
inside a Spark task. So the driver checks the file first, as libmaxminddb's verifier does: the
metadata, every record of the search tree (vectorized with numpy) and the data records the tree
points to (all of them for test-sized databases, an even sample of a real one's), and reports
what is wrong in words that name the file.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
SEPARATOR = 16  # zero bytes between the search tree and the data section
DATA_RECORDS_CHECKED = 20_000
YEAR_3000 = 32_503_680_000


class MmdbProblem(Exception):
    """The file is not a usable MaxMind DB; the message says why."""


def check_mmdb(path: str) -> dict[str, Any]:
    """Check ``path`` and return its metadata. Raises :class:`MmdbProblem` on any damage."""
    import maxminddb

    try:
        reader = maxminddb.open_database(path, maxminddb.MODE_MEMORY)
    except FileNotFoundError as exc:
        raise MmdbProblem("file not found") from exc
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise MmdbProblem(f"not a valid MaxMind DB file ({_first_line(exc)})") from exc
    meta = reader.metadata()
    reader.close()
    with open(path, "rb") as handle:
        buffer = handle.read()
    _check_metadata(meta, len(buffer))
    tree_size = meta.node_count * meta.record_size // 4
    data_end = buffer.rfind(METADATA_MARKER)
    data_size = data_end - tree_size - SEPARATOR
    if data_size < 0:
        raise MmdbProblem("the search tree is larger than the file (wrong node_count?)")
    offsets = _tree_data_offsets(buffer, meta, data_size)
    _check_data_records(buffer, tree_size + SEPARATOR, offsets)
    return {
        "database_type": meta.database_type,
        "build_epoch": meta.build_epoch,
        "ip_version": meta.ip_version,
        "node_count": meta.node_count,
        "description": meta.description.get("en", "") if meta.description else "",
    }


def _check_metadata(meta: Any, file_size: int) -> None:
    if meta.record_size not in (24, 28, 32):
        raise MmdbProblem(f"record_size {meta.record_size} is not 24, 28 or 32")
    if meta.ip_version not in (4, 6):
        raise MmdbProblem(f"ip_version {meta.ip_version} is not 4 or 6")
    if not isinstance(meta.database_type, str) or not meta.database_type:
        raise MmdbProblem("the metadata has no database_type")
    if not 0 <= meta.build_epoch < YEAR_3000:
        raise MmdbProblem(f"build_epoch {meta.build_epoch} is not a plausible build time")
    if meta.node_count <= 0 or meta.node_count * meta.record_size // 4 > file_size:
        raise MmdbProblem(f"node_count {meta.node_count} does not fit in the file")


def _tree_records(buffer: bytes, node_count: int, record_size: int) -> np.ndarray:
    """Left and right records of every node, as an (n, 2) uint64 array."""
    node_bytes = record_size // 4
    raw = np.frombuffer(buffer, dtype=np.uint8, count=node_count * node_bytes)
    nodes = raw.reshape(node_count, node_bytes).astype(np.uint64)

    def be(cols: np.ndarray) -> np.ndarray:
        value = np.zeros(cols.shape[0], dtype=np.uint64)
        for i in range(cols.shape[1]):
            value = (value << np.uint64(8)) | cols[:, i]
        return value

    if record_size == 28:
        middle = nodes[:, 3]
        left = be(nodes[:, 0:3]) | ((middle & np.uint64(0xF0)) << np.uint64(20))
        right = be(nodes[:, 4:7]) | ((middle & np.uint64(0x0F)) << np.uint64(24))
    else:
        half = node_bytes // 2
        left, right = be(nodes[:, :half]), be(nodes[:, half:])
    return np.stack([left, right], axis=1)


def _tree_data_offsets(buffer: bytes, meta: Any, data_size: int) -> np.ndarray:
    """Check every search-tree record; return the distinct data offsets they point to."""
    pairs = _tree_records(buffer, meta.node_count, meta.record_size)
    _check_tree_depth(pairs, meta.node_count, 32 if meta.ip_version == 4 else 128)
    records = pairs.ravel()
    node_count = np.uint64(meta.node_count)
    data = records[records > node_count]
    if np.any(data < node_count + np.uint64(SEPARATOR)):
        bad = int(data[data < node_count + np.uint64(SEPARATOR)][0])
        raise MmdbProblem(
            f"the search tree points into the data section separator (record {bad}, "
            f"node_count {meta.node_count}): corrupt search tree"
        )
    offsets = np.unique(data - node_count - np.uint64(SEPARATOR))
    if offsets.size and int(offsets[-1]) >= data_size:
        raise MmdbProblem(
            f"the search tree points past the data section (offset {int(offsets[-1])} of "
            f"{data_size} bytes): corrupt search tree"
        )
    return offsets


def _check_tree_depth(pairs: np.ndarray, node_count: int, bits: int) -> None:
    """Walk the tree level by level: a path longer than the address has bits is a cycle."""
    back_to_root = np.flatnonzero((pairs == 0).any(axis=1))
    if back_to_root.size:
        raise MmdbProblem(
            f"node {int(back_to_root[0])} of the search tree points back to the root "
            f"({back_to_root.size} such nodes): corrupt search tree"
        )
    frontier = np.zeros(1, dtype=np.uint64)
    for _ in range(bits):
        children = pairs[frontier.astype(np.int64)].ravel()
        frontier = np.unique(children[children < np.uint64(node_count)])
        if frontier.size == 0:
            return
    raise MmdbProblem(
        f"the search tree is deeper than an IPv{4 if bits == 32 else 6} address has bits "
        f"(node {int(frontier[0])} is reached after {bits} steps): corrupt search tree"
    )


def _check_data_records(buffer: bytes, pointer_base: int, offsets: np.ndarray) -> None:
    from maxminddb.decoder import Decoder

    if offsets.size > DATA_RECORDS_CHECKED:
        picks = np.linspace(0, offsets.size - 1, DATA_RECORDS_CHECKED).astype(np.int64)
        offsets = offsets[picks]
    decoder = Decoder(buffer, pointer_base=pointer_base)
    for offset in offsets.tolist():
        try:
            decoder.decode(pointer_base + offset)
        except RecursionError as exc:
            raise MmdbProblem(f"data record at offset {offset} nests too deeply") from exc
        except Exception as exc:  # the pure-Python decoder raises many kinds on bad bytes
            raise MmdbProblem(
                f"data record at offset {offset} cannot be decoded ({_first_line(exc)})"
            ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def build_date(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))
