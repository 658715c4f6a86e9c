"""The store's rows as the page reads them: one shared snapshot, rebuilt at a bounded rate.

Every open page polls; reading every row of a journal of 100,000 files for each poll of each
page would cost the daemon more than its uploads. One snapshot serves every request until it is
a second old, or five times as old as it took to build (a big store is re-read less often, so
the page can never take more than a sixth of a core however many pages are open).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from runwatchd.service.web.view import file_id
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

MIN_AGE = 1.0
BUILD_FACTOR = 5.0


class Catalog:
    """A cached list of the store's rows, and ids looked up in it."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic,
                 min_age: float = MIN_AGE) -> None:
        self._store = store
        self._clock = clock
        self._min_age = min_age
        self._lock = threading.Lock()
        self._records: list[FileRecord] = []
        self._by_id: dict[str, FileRecord] | None = None
        self._fresh_until = float("-inf")

    def records(self) -> list[FileRecord]:
        """Every row of the store, as of at most a few seconds ago."""
        with self._lock:
            if self._clock() >= self._fresh_until:
                self._rebuild()
            return self._records

    def find(self, fid: str) -> FileRecord | None:
        """The row whose id is `fid`; a miss re-reads the store once, unless it was just read
        (so a flood of made-up ids cannot make the daemon re-read its store for each)."""
        with self._lock:
            if self._clock() >= self._fresh_until:
                self._rebuild()
            if self._by_id is None:
                # Hashing every key only when an id is asked for: listing needs no ids of rows
                # it does not show.
                self._by_id = {file_id(r.path): r for r in self._records}
            return self._by_id.get(fid)

    def invalidate(self) -> None:
        """The next read goes to the store (after a write made through the page)."""
        with self._lock:
            self._fresh_until = float("-inf")

    def _rebuild(self) -> None:
        start = self._clock()
        self._records = list(self._store)
        self._by_id = None
        took = self._clock() - start
        self._fresh_until = self._clock() + max(self._min_age, BUILD_FACTOR * took)
