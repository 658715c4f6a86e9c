"""Bytes sent per upload in flight: the progress `status`, the status page and the log show.

The processor asks `progress_for(path)` when an upload starts and is handed a callback that
receives byte deltas (negative when a failed attempt's bytes are taken back); the daemon
forgets the path when its worker is done with it. An upload of PROGRESS_MIN_BYTES or more logs
a progress line every PROGRESS_EVERY seconds while it runs (from the worker's thread, so the
line carries the file's JSON fields): someone watching a 4 GiB master go up sees it move.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runwatchd.service.logs import add_log_context
from runwatchd.service.sizes import human_size

log = logging.getLogger(__name__)

PROGRESS_MIN_BYTES = 64 * 1024 * 1024  # smaller uploads are over before a line would help
PROGRESS_EVERY = 5.0
MIB = 1024 * 1024


@dataclass
class _Upload:
    sent: int
    total: int
    started: float
    line_at: float  # when the last progress line was logged (or the upload started)
    line_sent: int  # bytes sent at that moment
    finished: float | None = None  # when the last byte went


class UploadMeter:
    """Thread-safe (sent, total) per upload in flight, and the progress lines of big ones."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 min_bytes: int = PROGRESS_MIN_BYTES, every: float = PROGRESS_EVERY,
                 on_done: Callable[[float], None] | None = None) -> None:
        self._clock = clock
        self._on_done = on_done
        self._min_bytes = min_bytes
        self._every = every
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}

    def progress_for(self, path: Path) -> Callable[[int], None]:
        try:
            total = os.stat(path).st_size
        except OSError:
            total = 0
        key, now = str(path), self._clock()
        with self._lock:
            self._uploads[key] = _Upload(0, total, now, now, 0)
        add_log_context(bytes=total)  # the worker's JSON lines about this upload carry its size

        def add(delta: int) -> None:
            line = None
            with self._lock:
                up = self._uploads.get(key)
                if up is None:
                    return
                up.sent = max(0, up.sent + delta)
                now = self._clock()
                up.finished = now if up.total and up.sent >= up.total else None
                if up.total >= self._min_bytes and now - up.line_at >= self._every:
                    rate = (up.sent - up.line_sent) / (now - up.line_at)
                    line = (up.sent, up.total, rate)
                    up.line_at, up.line_sent = now, up.sent
            if line is not None:  # logged outside the lock: a slow log sink must not stall it
                _log_progress(path, *line)
        return add

    def forget(self, path: Path) -> None:
        """The worker is done with `path`: an upload that sent its last byte is timed."""
        with self._lock:
            up = self._uploads.pop(str(path), None)
        if up is not None and up.finished is not None and self._on_done is not None:
            self._on_done(up.finished - up.started)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """path -> (bytes sent, file size), for every upload in flight."""
        with self._lock:
            return {k: (u.sent, u.total) for k, u in self._uploads.items()}


def _log_progress(path: Path, sent: int, total: int, rate: float) -> None:
    percent = 100.0 * sent / total if total else 0.0
    log.info("uploading %s: %.0f%% (%s of %s, %.1f MiB/s)", path, percent, human_size(sent),
             human_size(total), rate / MIB,
             extra={"event": "upload_progress", "path": str(path), "bytes": total,
                    "bytes_sent": sent, "percent": round(percent, 1)})
