"""The read-only StoreView of the SQLite journal, for `runwatchd status` while the daemon runs.

A read-only connection (WAL mode: it never blocks the daemon, never sees half a write). A journal
that does not exist yet reads as empty: status must not create one in a state directory the
daemon has never used.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from runwatchd.store.base import HolderInfo, OwnerInfo
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import damaged, read_counts, read_in_state, read_recent_errors
from runwatchd.store.sqlite_leases import read_holders, read_owner


class SqliteView:
    """A StoreView on the journal at `path` (which may not exist)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path.exists():
            self._db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                       check_same_thread=False)
            try:  # reads the header and the schema: a damaged journal is told now, in one line
                self._db.execute("PRAGMA busy_timeout=5000")
                self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as e:
                self._db.close()
                if isinstance(e, sqlite3.OperationalError):
                    raise
                raise damaged(path, e) from None

    def counts(self) -> dict[str, int]:
        with self._lock:
            return read_counts(self._db) if self._db else {}

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        with self._lock:
            return read_recent_errors(self._db, limit) if self._db else []

    def in_state(self, *states: str) -> list[FileRecord]:
        with self._lock:
            return read_in_state(self._db, states) if self._db else []

    def owner(self) -> OwnerInfo | None:
        return read_owner(self.path)

    def holders(self) -> list[HolderInfo]:
        with self._lock:
            return read_holders(self._db, time.time()) if self._db else []

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
