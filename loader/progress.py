"""A minimal progress line on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    """Counts things and redraws one status line at most a few times per second."""

    def __init__(self, label: str, every: float = 0.2, stream=None) -> None:
        self.label = label
        self.count = 0
        self.every = every
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._last = 0.0
        self._start = time.monotonic()

    def advance(self, n: int = 1, detail: str = "") -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            rate = self.count / max(now - self._start, 1e-9)
            self.stream.write(f"\r{self.label}: {self.count:,} ({rate:,.0f}/s) {detail[:60]:<60}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write(f"\r{self.label}: {self.count:,} done{' ' * 70}\n")
            self.stream.flush()
