"""A terminal progress bar for `runwatchd upload`: one line for all files in flight.

Hand-written rather than a dependency: it only needs bytes done over bytes total, a rate, files
finished and retries, redrawn in place at most ten times a second on stderr, and only on a
terminal (the CLI never creates one otherwise). The line always fits the terminal's width (a
wrapped line cannot be redrawn in place), and uses no escape codes (it pads with spaces), so it
also works with TERM=dumb. Log lines printed meanwhile go above the bar: see `log_filter`.

    12/50 files  41% [########............]  8.2/19.9 MiB  2.1 MiB/s  3 retries  ETA 0:06
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_INTERVAL = 0.1
DEFAULT_COLUMNS = 80
_MIN_BAR = 10
_MAX_BAR = 40
_TAIL_ROOM = 40  # "57.2/200.0 MiB  25.0 MiB/s  3 retries"


class FileProgress:
    """One tracked file: call it with the bytes sent since the last call (negative when an
    attempt restarts), then `finish(ok)` once."""

    def __init__(self, bar: ProgressBar, name: str, size: int) -> None:
        self._bar = bar
        self.name = name
        self.size = size
        self.sent = 0
        self.finished = False

    def __call__(self, nbytes: int) -> None:
        self._bar._advance(self, nbytes)

    def finish(self, ok: bool) -> None:
        self._bar._finish(self, ok)


class ProgressBar:
    """Aggregate progress of every tracked upload, redrawn in place on one line."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
                 columns: int | None = None) -> None:
        """`columns` fixes the width (tests); by default the terminal's, read at each draw."""
        self.stream = stream
        self.clock = clock
        self._columns = columns
        self._lock = threading.Lock()
        self._files: list[FileProgress] = []
        self._total = 0
        self._done = 0
        self._ok = 0
        self._failed = 0
        self._retries = 0
        self._start = clock()
        self._last_draw: float | None = None
        self._shown = 0  # length of what is on the line now; 0 when it is clear
        self._closed = False

    def track(self, name: str, size: int) -> FileProgress:
        """Register a file; the returned object is the `progress` callback of client.upload."""
        handle = FileProgress(self, name, size)
        with self._lock:
            self._files.append(handle)
            self._total += size
            self._draw()
        return handle

    def retried(self) -> None:
        """Count one retry (client.RunwayClient's on_retry); shown so a wait never looks stuck."""
        with self._lock:
            self._retries += 1
            self._draw(force=True)

    def clear(self) -> None:
        """Blank the line (before something else is printed); the next update redraws it."""
        with self._lock:
            self._erase()

    def close(self) -> None:
        """Draw the final state and end the line. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            if self._files:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()
                self._shown = 0
            self._closed = True

    def log_filter(self) -> logging.Filter:
        """A filter for a log handler writing to the same terminal: it blanks the bar before each
        record, so log lines land on a line of their own and the bar is redrawn below them."""
        bar = self

        class _ClearBar(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                bar.clear()
                return True

        return _ClearBar()

    # -- inside the lock -------------------------------------------------------------------------

    def _advance(self, handle: FileProgress, nbytes: int) -> None:
        with self._lock:
            handle.sent += nbytes
            self._done += nbytes
            self._draw()

    def _finish(self, handle: FileProgress, ok: bool) -> None:
        with self._lock:
            if handle.finished:
                return
            handle.finished = True
            if ok:
                self._ok += 1
            else:
                # A failed file leaves the totals, so the bar still ends at 100% of what was sent.
                self._failed += 1
                self._total -= handle.size
                self._done -= handle.sent
            self._draw(force=True)

    def _erase(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0

    def _draw(self, force: bool = False) -> None:
        if self._closed:
            return
        now = self.clock()
        if not force and self._shown and self._last_draw is not None \
                and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        line = self.render(now)
        # Padding covers a longer previous line; "\r" returns to its start without a newline.
        self.stream.write("\r" + line.ljust(self._shown))
        self.stream.flush()
        self._shown = len(line)

    def render(self, now: float) -> str:
        """The bar's text for the current state, no longer than the terminal width minus one."""
        width = self._width()
        total = max(self._total, 0)
        done = min(max(self._done, 0), total)
        frac = done / total if total else 0.0  # no total left: nothing tracked, or all failed
        elapsed = max(now - self._start, 1e-6)
        rate = done / elapsed
        if len(self._files) == 1:
            head = self._files[0].name
        else:
            head = f"{self._ok + self._failed}/{len(self._files)} files"
        sizes = f"{_size(done, total)}  {_size(rate)}/s"
        extras = []  # dropped from the end when the line is too narrow for them
        if self._failed:
            extras.append(f"{self._failed} failed")
        if self._retries:
            extras.append(f"{self._retries} {'retry' if self._retries == 1 else 'retries'}")
        if 0 < done < total and rate > 0:
            extras.append(f"ETA {_duration((total - done) / rate)}")
        head = _shorten(head, max(width // 3, 12))
        # The bar keeps its width while the numbers after it change length, so it does not jump.
        bar_width = min(width - len(head) - 10 - _TAIL_ROOM, _MAX_BAR)
        if bar_width < _MIN_BAR:
            return f"{head} {frac * 100:3.0f}%  {sizes}"[:width]
        filled = int(frac * bar_width)
        line = f"{head} {frac * 100:3.0f}% [{'#' * filled}{'.' * (bar_width - filled)}]  {sizes}"
        for extra in extras:
            if len(line) + 2 + len(extra) > width:
                break
            line += "  " + extra
        return line[:width]

    def _width(self) -> int:
        columns = self._columns
        if columns is None:
            try:
                columns = os.get_terminal_size(self.stream.fileno()).columns
            except (AttributeError, ValueError, OSError):
                columns = 0
            if columns <= 0:
                columns = DEFAULT_COLUMNS
        # One column short of the edge: writing the last column makes some terminals wrap.
        return max(columns - 1, 20)


def _size(n: float, total: int | None = None) -> str:
    """Bytes in the unit that suits the larger of the two numbers: "8.2/19.9 MiB", "512 B"."""
    ref = max(n, total or 0)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if ref >= scale:
            shown = f"{n / scale:.1f}" if total is None else f"{n / scale:.1f}/{total / scale:.1f}"
            return f"{shown} {unit}"
    return f"{n:.0f} B" if total is None else f"{n:.0f}/{total} B"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _shorten(text: str, width: int) -> str:
    """Cut `text` to `width` columns in the middle, so a file name keeps its extension."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    keep_end = (width - 1) // 2
    return text[: width - 1 - keep_end] + "…" + (text[-keep_end:] if keep_end else "")
