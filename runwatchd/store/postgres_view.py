"""The read-only StoreView of a PostgreSQL store, for `runwatchd status` beside the daemons.

One connection whose transactions are read-only (default_transaction_read_only): it can neither
create, migrate nor write the store, and MVCC means it never waits for a writer nor sees half a
write. A store not created yet reads as empty; a schema newer than this runwatchd is refused; one
older than it (not yet migrated by a daemon of this version: a view never migrates) reads its
rows, and names no owner and no holders (its tables for them are v1's or missing).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

from runwatchd.store import postgres_schema as schema
from runwatchd.store.base import HolderInfo, OwnerInfo
from runwatchd.store.postgres_leases import read_holders, read_owner
from runwatchd.store.postgres_rows import (
    Connection,
    Cursor,
    connect,
    read_counts,
    read_in_state,
    read_recent_errors,
)
from runwatchd.store.record import FileRecord

T = TypeVar("T")


class PostgresView:
    """A StoreView on the store at `url` (which may not have been created yet)."""

    def __init__(self, url: str, *, node: str | None = None) -> None:
        self.url = url
        self.node = node or socket.gethostname()  # whose owner owner() names
        self._lock = threading.Lock()
        self._closed = False
        self._version = 0  # the store's schema version as last read (0: not created)
        self._conn: Connection | None = self._connect()

    def _connect(self) -> Connection:
        conn = connect(self.url)
        try:
            conn.execute("SET default_transaction_read_only = on")
            self._check_created(conn)
        except BaseException as e:
            conn.close()
            if isinstance(e, psycopg.Error):
                raise schema.unavailable(self.url, e) from None
            raise
        return conn

    def _check_created(self, conn: Connection) -> int:
        """The store's schema version (0: not created), read again until it is the current
        one (a daemon may create or migrate the store while the view lives)."""
        if self._version < schema.SCHEMA_VERSION:
            version = schema.stored_version(conn)
            schema.refuse_newer(version)
            self._version = version or 0
        return self._version

    def _read(self, work: Callable[[Cursor], T], empty: T, since: int = 1) -> T:
        """`work` on the connection; a dropped one raises StoreUnavailable once and is replaced
        by the next call (the status page's view lives as long as the daemon)."""
        with self._lock:
            if self._closed:
                raise ValueError("the view is closed")
            if self._conn is None:
                self._conn = self._connect()
            try:
                if self._check_created(self._conn) < since:
                    return empty  # not created, or made before what `work` reads
                with self._conn.cursor() as cur:
                    return work(cur)
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                self._conn.close()
                self._conn = None
                raise schema.unavailable(self.url, e) from None

    def counts(self) -> dict[str, int]:
        return self._read(read_counts, {})

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        return self._read(lambda cur: read_recent_errors(cur, limit), [])

    def in_state(self, *states: str) -> list[FileRecord]:
        return self._read(lambda cur: read_in_state(cur, states), [])

    def owner(self) -> OwnerInfo | None:
        """The owner of this view's node (one daemon per node: see PostgresStore)."""
        return self._read(lambda cur: read_owner(cur, self.node), None, since=2)

    def holders(self) -> list[HolderInfo]:
        return self._read(read_holders, [], since=2)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
