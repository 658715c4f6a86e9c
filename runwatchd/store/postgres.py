"""A store in PostgreSQL (`[store] url = "postgresql://..."`): the rows of SqliteStore, reachable
from several hosts. Same states, same semantics (see store/sqlite.py for the states and
store/base.py for what each method promises); the schema is in postgres_schema.py.

Atomicity with the database's own tools, not a process-wide lock:
    - every method is one transaction on a connection of a small pool (psycopg_pool; a dropped
      connection is noticed by the pool's check and replaced; a call that fails on one raises
      StoreUnavailable, its transaction rolled back);
    - a write that reads the row first reads it with SELECT ... FOR UPDATE (the row lock is held
      to the commit, so no other transaction can write it in between); an absent row is written
      with INSERT ... ON CONFLICT DO NOTHING, and when another transaction inserted the same path
      meanwhile, the row is read again, locked, and the decision made again;
    - the transition check (store/transitions.py) runs inside that transaction, on the state
      read under the lock; a deadlock or serialisation failure retries the whole transaction.
Ownership is per node (one daemon per node name; several nodes share the store): a session-level
advisory lock held by a dedicated connection, which the server releases when that connection
ends, however the process ended (a killed process's socket closes at once; a host that vanishes
is noticed through TCP keepalives). The owners table names each node's owner. Leases, holders
and ownership's SQL are in postgres_leases.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from runwatchd.lifecycle.states import TASK_STATES, FileState
from runwatchd.store import postgres_leases as leases
from runwatchd.store import postgres_schema as schema
from runwatchd.store.base import HolderInfo, OwnerInfo, Signature, new_holder
from runwatchd.store.postgres_rows import (
    COLUMNS,
    CONNECT_OPTIONS,
    SELECT,
    Cursor,
    connect,
    int_or_none,
    read_counts,
    read_in_state,
    read_recent_errors,
    row_to_record,
    row_values,
)
from runwatchd.store.record import FileRecord
from runwatchd.store.transitions import TransitionGuard

T = TypeVar("T")

# Transactions retried after a deadlock or serialisation failure before giving up.
_RETRIES = 3
# Times a write re-reads a row another transaction inserted under it before giving up.
_RACE_TRIES = 10

_INSERT_NEW = (f"INSERT INTO files ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
               "ON CONFLICT (path) DO NOTHING RETURNING path")
_UPDATE = (f"UPDATE files SET {', '.join(f'{c} = %s' for c in COLUMNS[1:])} "
           "WHERE path = %s")


class PostgresStore:
    """A Store in a PostgreSQL database: a pool of connections, shared by the threads."""

    def __init__(self, url: str, *, node: str | None = None, max_connections: int = 12,
                 clock: Callable[[], float] = time.time, strict: bool | None = None) -> None:
        self.url = url
        self.node = node or socket.gethostname()
        self._clock = clock
        self._guard = TransitionGuard(strict)
        self._owner_lock = threading.Lock()
        self._owner: leases.SessionLock | None = None
        self._holder = new_holder(self.node)
        self._holder_lock = leases.HolderLock(lambda: connect(url), self._holder)
        # One plain connection first: an unreachable server fails at once with the driver's
        # reason (the pool would retry quietly until its timeout), and the schema is ready
        # before the pool's connections use it.
        with connect(url) as conn:
            try:
                schema.migrate(conn)
            except psycopg.Error as e:
                raise schema.unavailable(url, e) from None
        self._pool = ConnectionPool(url, min_size=1, max_size=max(2, max_connections),
                                    kwargs={"autocommit": True, **CONNECT_OPTIONS},
                                    check=ConnectionPool.check_connection, open=False,
                                    name="runwatchd-store",
                                    timeout=float(CONNECT_OPTIONS["connect_timeout"]))
        try:
            self._pool.open(wait=True, timeout=float(CONNECT_OPTIONS["connect_timeout"]))
        except BaseException as e:
            self._pool.close()
            if isinstance(e, (psycopg.Error, PoolTimeout)):
                raise schema.unavailable(url, e) from None
            raise

    def _run(self, work: Callable[[Cursor], T]) -> T:
        """`work` in one transaction, retried after a deadlock or serialisation failure."""
        for attempt in range(_RETRIES):
            try:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return work(cur)
            except psycopg.errors.TransactionRollback as e:
                if attempt == _RETRIES - 1:
                    raise schema.unavailable(self.url, e) from None
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as e:
                raise schema.unavailable(self.url, e) from None
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Cursor], T]) -> T:
        """`work`, one SELECT, in autocommit: a statement is its own consistent snapshot, and
        a read needs no BEGIN and COMMIT round trips."""
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                return work(cur)
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as e:
            raise schema.unavailable(self.url, e) from None

    # -- ownership ------------------------------------------------------------------------------

    def take_ownership(self) -> bool:
        """This node's owner advisory lock on a connection of its own (held while it lives), and
        the owners row naming this process: one daemon per node name (postgres_leases.py)."""
        with self._owner_lock:
            if self._owner is not None:
                if self._owner.alive():  # the lock lives as long as its connection
                    return True
                self._owner = None  # gone (server restart, network): so is the lock
            conn = connect(self.url)
            try:
                lock = leases.take_node_ownership(conn, self.node, self._clock())
            except psycopg.Error as e:
                conn.close()
                raise schema.unavailable(self.url, e) from None
            if lock is None:
                conn.close()
                return False
            self._owner = lock
            return True

    def owner(self) -> OwnerInfo | None:
        """The owner of this handle's node."""
        return self._read(lambda cur: leases.read_owner(cur, self.node))

    def check_intact(self) -> str | None:
        """Always None: a database cannot be unlinked under an open connection the way a journal
        file can; a lost connection is StoreUnavailable on the next call instead."""
        return None

    def close(self) -> None:
        with self._owner_lock:
            if self._owner is not None:
                try:  # owner() names nobody from now on (the row would be ignored anyway)
                    self._owner.execute("DELETE FROM owners WHERE backend_pid = pg_backend_pid()",
                                        ())
                except psycopg.Error:
                    pass  # the connection is gone, and the lock with it
                self._owner.close()  # releases the advisory lock
                self._owner = None
        # Without leave(): the holder lock goes, so the others see this holder dead at once.
        self._holder_lock.close()
        self._pool.close()

    # -- writes ---------------------------------------------------------------------------------

    def _write_row(self, cur: Cursor, path: str,
                   decide: Callable[[FileRecord | None], tuple[FileRecord | None, T]]) -> T:
        """Read `path`'s row locked, let `decide` say what to write (None: nothing) and what to
        answer, check the transition and write it; all inside the caller's transaction."""
        for _ in range(_RACE_TRIES):
            cur.execute(f"{SELECT} WHERE path = %s FOR UPDATE", (path,))
            row = cur.fetchone()
            current = row_to_record(row) if row else None
            old_state = current.state if current else None  # before `decide` changes `current`
            write, answer = decide(current)
            if write is None:
                return answer
            self._guard.check(old_state, write.state, write.path)
            write.updated_at = self._clock()
            values = row_values(write)
            if current is not None:
                cur.execute(_UPDATE, values[1:] + [write.path])
                return answer
            cur.execute(_INSERT_NEW, values)
            if cur.fetchone() is not None:
                return answer
            # Another transaction inserted this path since our read (and committed, or the
            # INSERT would still wait): read it again, locked, and decide again.
        raise schema.unavailable(self.url, RuntimeError(f"{path}: rewritten under us too often"))

    def put(self, record: FileRecord) -> None:
        self._run(lambda cur: self._write_row(cur, record.path, lambda _: (record, None)))

    def put_many(self, records: list[FileRecord]) -> None:
        """One transaction: the old rows locked by one SELECT, then batched UPDATEs and INSERTs
        (psycopg pipelines executemany: no round trip per row)."""
        if records:
            self._run(lambda cur: self._put_many(cur, records))

    def _put_many(self, cur: Cursor, records: list[FileRecord]) -> None:
        cur.execute("SELECT path, state FROM files WHERE path = ANY(%s) ORDER BY path FOR UPDATE",
                    (sorted({r.path for r in records}),))
        old: dict[str, str | None] = {str(p): str(s) for p, s in cur.fetchall()}
        existing = set(old)
        now = self._clock()
        for record in records:
            self._guard.check(old.get(record.path), record.state, record.path)
            old[record.path] = record.state  # the same path twice in one batch
            record.updated_at = now
        last = {r.path: r for r in records}  # of one path twice, the last wins
        updates = [r for p, r in last.items() if p in existing]
        inserts = [r for p, r in last.items() if p not in existing]
        if updates:
            cur.executemany(_UPDATE, [row_values(r)[1:] + [r.path] for r in updates])
        if not inserts:
            return
        cur.executemany(_INSERT_NEW, [row_values(r) for r in inserts], returning=True)
        inserted: set[str] = set()
        while True:
            row = cur.fetchone()
            if row is not None:
                inserted.add(str(row[0]))
            if not cur.nextset():
                break
        for raced in (r for r in inserts if r.path not in inserted):
            # Inserted by another transaction since our read: checked against its state.
            self._write_row(cur, raced.path, lambda _, r=raced: (r, None))  # type: ignore[misc]

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        record.state = FileState.SUBMITTING
        return self.put_unless_claimed(record)

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None:
        def decide(current: FileRecord | None) -> tuple[FileRecord | None, FileRecord | None]:
            if (current is not None and current.state in TASK_STATES
                    and (record.sha256 is None or current.sha256 == record.sha256)):
                return None, current
            return record, None

        return self._run(lambda cur: self._write_row(cur, record.path, decide))

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None:
        def decide(current: FileRecord | None) -> tuple[FileRecord | None, FileRecord | None]:
            if current is None:
                return None, None
            for key, value in changes.items():
                setattr(current, key, value)
            return current, current

        return self._run(lambda cur: self._write_row(cur, str(path), decide))

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool:
        def decide(current: FileRecord | None) -> tuple[FileRecord | None, bool]:
            if current is None or current.state != expected_state:
                return None, False
            for key, value in changes.items():
                setattr(current, key, value)
            return current, True

        return self._run(lambda cur: self._write_row(cur, str(path), decide))

    def delete(self, path: Path | str) -> None:
        self._run(lambda cur: cur.execute("DELETE FROM files WHERE path = %s", (str(path),)))

    # -- reads ----------------------------------------------------------------------------------

    def get(self, path: Path | str) -> FileRecord | None:
        def work(cur: Cursor) -> FileRecord | None:
            row = cur.execute(f"{SELECT} WHERE path = %s", (str(path),)).fetchone()
            return row_to_record(row) if row else None

        return self._read(work)

    def in_state(self, *states: str) -> list[FileRecord]:
        return self._read(lambda cur: read_in_state(cur, states))

    def signatures(self) -> dict[str, Signature]:
        def work(cur: Cursor) -> dict[str, Signature]:
            cur.execute("SELECT path, state, size, mtime_ns, inode FROM files")
            return {r[0]: (r[1], r[2], r[3], int_or_none(r[4])) for r in cur.fetchall()}

        return self._read(work)

    def signature(self, path: Path | str) -> Signature | None:
        def work(cur: Cursor) -> Signature | None:
            row = cur.execute("SELECT state, size, mtime_ns, inode FROM files WHERE path = %s",
                              (str(path),)).fetchone()
            return (row[0], row[1], row[2], int_or_none(row[3])) if row else None

        return self._read(work)

    def output_dirs(self) -> set[str]:
        def work(cur: Cursor) -> set[str]:
            cur.execute("SELECT DISTINCT output_dir FROM files WHERE output_dir IS NOT NULL")
            return {r[0] for r in cur.fetchall()}

        return self._read(work)

    def counts(self) -> dict[str, int]:
        return self._read(read_counts)

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        return self._read(lambda cur: read_recent_errors(cur, limit))

    def __iter__(self) -> Iterator[FileRecord]:
        def work(cur: Cursor) -> list[FileRecord]:
            return [row_to_record(r) for r in cur.execute(SELECT).fetchall()]

        return iter(self._read(work))

    # -- leases (postgres_leases.py) ------------------------------------------------------------

    @property
    def holder(self) -> str:
        return self._holder

    def lease(self, path: Path | str, seconds: float) -> str | None:
        return self._run(lambda cur: leases.lease(cur, str(path), self._holder, seconds))

    def release(self, path: Path | str) -> None:
        self._run(lambda cur: leases.release(cur, str(path), self._holder))

    def heartbeat(self, seconds: float, *, in_flight: int = 0, version: str = "") -> None:
        """Takes (again) the holder lock first: the proof of life the others check."""
        try:
            lock = self._holder_lock.ensure()
        except psycopg.Error as e:
            raise schema.unavailable(self.url, e) from None
        self._run(lambda cur: leases.beat(cur, self._holder, self.node, lock, seconds,
                                          in_flight, version))

    def take_orphans(self, states: Collection[str], seconds: float,
                     limit: int = 500) -> list[FileRecord]:
        def work(cur: Cursor) -> list[FileRecord]:
            paths = leases.take_orphans(cur, self._holder, states, seconds, limit)
            if not paths:
                return []
            cur.execute(f"{SELECT} WHERE path = ANY(%s) ORDER BY updated_at", (paths,))
            return [row_to_record(r) for r in cur.fetchall()]

        return self._run(work)

    def leave(self) -> None:
        self._run(lambda cur: leases.leave(cur, self._holder))
        self._holder_lock.close()

    def holders(self) -> list[HolderInfo]:
        return self._read(leases.read_holders)
