"""Bytes sent per upload in flight: what the status page shows as progress.

The processor asks `progress_for(path)` when an upload starts and is handed a callback that
receives byte deltas (negative when a failed attempt's bytes are taken back); the daemon
forgets the path when its worker is done with it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from runwatchd.service.logs import add_log_context


class UploadMeter:
    """Thread-safe (sent, total) per upload in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, tuple[int, int]] = {}

    def progress_for(self, path: Path) -> Callable[[int], None]:
        try:
            total = os.stat(path).st_size
        except OSError:
            total = 0
        key = str(path)
        with self._lock:
            self._sent[key] = (0, total)
        add_log_context(bytes=total)  # the worker's JSON lines about this upload carry its size

        def add(delta: int) -> None:
            with self._lock:
                sent, size = self._sent.get(key, (0, total))
                self._sent[key] = (max(0, sent + delta), size)
        return add

    def forget(self, path: Path) -> None:
        with self._lock:
            self._sent.pop(str(path), None)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """path -> (bytes sent, file size), for every upload in flight."""
        with self._lock:
            return dict(self._sent)
