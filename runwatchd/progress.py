"""A terminal progress bar for `runwatchd upload`, one line for all files in flight.

Hand-written (about 60 lines) rather than a dependency: it only needs bytes done over bytes
total and a rate, redrawn at most ten times a second, on stderr, and only on a terminal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO


class ProgressBar:
    """Aggregate progress of every tracked upload, redrawn in place on one line."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
                 width: int = 30) -> None:
        self.stream = stream
        self.clock = clock
        self.width = width
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._names: list[str] = []
        self._start = clock()
        self._last_draw = 0.0

    def track(self, name: str, size: int) -> Callable[[int], None]:
        """Register a file; the returned callback takes the bytes sent since its last call."""
        with self._lock:
            self._total += size
            self._names.append(name)

        def advance(nbytes: int) -> None:
            with self._lock:
                self._done += nbytes
                self._draw()

        return advance

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        total = max(self._total, 1)
        frac = min(1.0, self._done / total)
        filled = int(frac * self.width)
        rate = self._done / max(now - self._start, 1e-6) / 1e6
        label = self._names[-1] if len(self._names) == 1 else f"{len(self._names)} files"
        self.stream.write(f"\r{label[:30]:30} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{frac * 100:5.1f}% {self._done / 1e6:8.1f}/{total / 1e6:.1f} MB "
                          f"{rate:6.1f} MB/s")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._names:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()
