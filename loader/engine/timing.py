"""Where a batch's time goes: each phase of the engine timed, for ``--debug`` and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

PHASES: list[tuple[str, float]] = []  # (phase, seconds) since the last clear()


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        PHASES.append((name, time.perf_counter() - started))


def clear() -> None:
    PHASES.clear()


def render() -> str:
    """``phase 1.2 s, phase 0.3 s, ...`` with repeated phases summed, in first-seen order."""
    totals: dict[str, float] = {}
    for name, seconds in PHASES:
        totals[name] = totals.get(name, 0.0) + seconds
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in totals.items())
