"""Files a folder sees and does not take: one INFO line each, with the reason, and counts.

Someone who drops a .gif into a watched folder and sees nothing happen needs to be told why.
Each file version (path, size, mtime) is reported once, however many events or rescans bring it
again; a new version is reported again. Built-in ignores (temp files of rsync and browsers,
runwatchd's own sidecars) stay silent: they are not files anyone dropped, and most become a
real file a moment later.

Reasons are short stable tokens (a metrics label, a status.json key); `describe` gives words.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

NOT_INCLUDED = "not_included"
IGNORED = "ignored"
RULE_OUTPUT = "rule_output"
# Every reason, so a counter can show each at zero before the first file. (A file too small or
# too large for Runway is taken, checked by the lifecycle, and ends "invalid" with its warning.)
REASONS = (NOT_INCLUDED, IGNORED, RULE_OUTPUT)
# A file seen again within this long of its last sighting is the same version still being
# written (a slow copy changes size and mtime at every event): not reported again.
QUIET_SECONDS = 10.0

# How many file versions are remembered: a folder of 1e6 ignored files must not grow memory
# without bound; the oldest are forgotten first (at worst one of them is reported twice).
REMEMBERED = 50_000


class SkipLog:
    """Reports each file version not taken once, counts them by reason; thread-safe (observer
    threads and scans report at once). `on_new(reason)` is called once per reported version (a
    metrics counter).

    A version is (inode, size, mtime). Every sighting records the latest version; a different
    one is reported only when the last sighting is QUIET_SECONDS old, so a file copied in slowly
    is one line, and the same file rewritten later is another."""

    def __init__(self, on_new: Callable[[str], None] | None = None, *,
                 remembered: int = REMEMBERED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_new = on_new
        self._remembered = remembered
        self._clock = clock
        self._lock = threading.Lock()
        # path -> (version, when last seen)
        self._seen: OrderedDict[str, tuple[tuple[int, int, int], float]] = OrderedDict()
        self._counts: dict[str, int] = {}

    def report(self, path: Path, reason: str, detail: str,
               st: os.stat_result | None = None) -> bool:
        """Log `path` not taken because of `reason` (`detail`: the words after it) unless this
        version was reported already; True when it was logged now. A file gone meanwhile is
        not reported (it was a temp file after all)."""
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                return False
        key, version, now = str(path), (st.st_ino, st.st_size, st.st_mtime_ns), self._clock()
        with self._lock:
            last = self._seen.get(key)
            self._seen[key] = (version, now)
            if last is not None and (last[0] == version or now - last[1] < QUIET_SECONDS):
                self._seen.move_to_end(key)
                return False
            self._seen.move_to_end(key)
            while len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
            self._counts[reason] = self._counts.get(reason, 0) + 1
        log.info("not taking %s: %s", path, detail,
                 extra={"event": "not_taken", "path": str(path), "reason": reason})
        if self._on_new is not None:
            self._on_new(reason)
        return True

    def counts(self) -> dict[str, int]:
        """reason -> file versions not taken so far (only reasons met)."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
