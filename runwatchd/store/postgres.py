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
Ownership is a session-level advisory lock held by a dedicated connection: the server releases it
when that connection ends, however the process ended (a killed process's socket closes at once;
a host that vanishes is noticed through TCP keepalives). The owners table names the holder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from runwatchd.lifecycle.states import TASK_STATES, FileState
from runwatchd.store import postgres_schema as schema
from runwatchd.store.base import OwnerInfo, Signature
from runwatchd.store.record import FileRecord
from runwatchd.store.transitions import TransitionGuard

T = TypeVar("T")
Cursor = psycopg.Cursor[tuple[Any, ...]]
Connection = psycopg.Connection[tuple[Any, ...]]

# Every connection: fail fast when the server is unreachable, notice a vanished peer.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 10, "application_name": "runwatchd",
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
}
# Transactions retried after a deadlock or serialisation failure before giving up.
_RETRIES = 3
# Times a write re-reads a row another transaction inserted under it before giving up.
_RACE_TRIES = 10

_COLUMNS = [f.name for f in fields(FileRecord)]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM files"
_INSERT_NEW = (f"INSERT INTO files ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
               "ON CONFLICT (path) DO NOTHING RETURNING path")
_UPDATE = (f"UPDATE files SET {', '.join(f'{c} = %s' for c in _COLUMNS[1:])} "
           "WHERE path = %s")
_OUTPUTS = _COLUMNS.index("outputs")
_OWNER = """SELECT o.pid, o.node, o.since FROM owners o WHERE EXISTS (
    SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
    AND l.pid = o.backend_pid AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 2
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))"""


def _row_to_record(row: tuple[Any, ...]) -> FileRecord:
    values = dict(zip(_COLUMNS, row))
    values["outputs"] = json.loads(values["outputs"]) if values["outputs"] else []
    values["inode"] = _int_or_none(values["inode"])
    return FileRecord(**values)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)  # NUMERIC comes back as Decimal


def _row_values(record: FileRecord) -> list[Any]:
    """The row's values; NUL in a text (an API's message may hold one) becomes U+FFFD, because
    PostgreSQL text cannot hold NUL and the write must not fail for it. A path cannot hold NUL."""
    values: list[Any] = [_no_nul(getattr(record, name)) for name in _COLUMNS]
    values[_OUTPUTS] = json.dumps(record.outputs)  # JSON escapes NUL itself
    return values


def _no_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


# -- reads shared by PostgresStore and the read-only PostgresView ------------------------------


def read_counts(cur: Cursor) -> dict[str, int]:
    # COLLATE "C": byte order, as SQLite and Python sort (a locale's order skips underscores).
    cur.execute('SELECT state, COUNT(*) FROM files GROUP BY state ORDER BY state COLLATE "C"')
    return {str(state): int(n) for state, n in cur.fetchall()}


def read_recent_errors(cur: Cursor, limit: int) -> list[FileRecord]:
    cur.execute(f"{_SELECT} WHERE error IS NOT NULL ORDER BY updated_at DESC LIMIT %s", (limit,))
    return [_row_to_record(r) for r in cur.fetchall()]


def read_in_state(cur: Cursor, states: tuple[str, ...]) -> list[FileRecord]:
    cur.execute(f"{_SELECT} WHERE state = ANY(%s)", (list(states),))
    return [_row_to_record(r) for r in cur.fetchall()]


def read_owner(cur: Cursor) -> OwnerInfo | None:
    """The owners row, if its connection still holds the owner lock."""
    cur.execute(_OWNER, (schema.LOCK_NAMESPACE, schema.OWNER_KEY))
    row = cur.fetchone()
    if row is None:
        return None
    return OwnerInfo(pid=row[0], node=row[1], since=row[2])


def connect(url: str) -> Connection:
    """One autocommit connection (StoreUnavailable when the server cannot be reached)."""
    try:
        return psycopg.connect(url, autocommit=True, **CONNECT_OPTIONS)
    except psycopg.Error as e:
        raise schema.unavailable(url, e) from None  # the driver's error may hold the URL


class PostgresStore:
    """A Store in a PostgreSQL database: a pool of connections, shared by the threads."""

    def __init__(self, url: str, *, node: str | None = None, max_connections: int = 12,
                 clock: Callable[[], float] = time.time, strict: bool | None = None) -> None:
        self.url = url
        self.node = node or socket.gethostname()
        self._clock = clock
        self._guard = TransitionGuard(strict)
        self._owner_lock = threading.Lock()
        self._owner: Connection | None = None
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
        """The owner advisory lock on a connection of its own (held while it lives), and the
        owners row naming this process."""
        with self._owner_lock:
            if self._owner is not None:
                try:  # the lock lives as long as its connection: is it still there?
                    self._owner.execute("SELECT 1")
                    return True
                except psycopg.Error:
                    self._owner.close()  # gone (server restart, network): so is the lock
                    self._owner = None
            conn = connect(self.url)
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                   (schema.LOCK_NAMESPACE, schema.OWNER_KEY)).fetchone()
                if not row or not row[0]:
                    conn.close()
                    return False
                conn.execute(
                    "INSERT INTO owners (id, pid, node, since, backend_pid) "
                    "VALUES (1, %s, %s, %s, pg_backend_pid()) ON CONFLICT (id) DO UPDATE SET "
                    "pid = EXCLUDED.pid, node = EXCLUDED.node, since = EXCLUDED.since, "
                    "backend_pid = EXCLUDED.backend_pid",
                    (os.getpid(), self.node, self._clock()))
            except psycopg.Error as e:
                conn.close()
                raise schema.unavailable(self.url, e) from None
            self._owner = conn
            return True

    def owner(self) -> OwnerInfo | None:
        return self._read(read_owner)

    def check_intact(self) -> str | None:
        """Always None: a database cannot be unlinked under an open connection the way a journal
        file can; a lost connection is StoreUnavailable on the next call instead."""
        return None

    def close(self) -> None:
        with self._owner_lock:
            if self._owner is not None:
                try:  # owner() names nobody from now on (the row would be ignored anyway)
                    self._owner.execute("DELETE FROM owners WHERE backend_pid = pg_backend_pid()")
                except psycopg.Error:
                    pass  # the connection is gone, and the lock with it
                self._owner.close()  # releases the advisory lock
                self._owner = None
        self._pool.close()

    # -- writes ---------------------------------------------------------------------------------

    def _write_row(self, cur: Cursor, path: str,
                   decide: Callable[[FileRecord | None], tuple[FileRecord | None, T]]) -> T:
        """Read `path`'s row locked, let `decide` say what to write (None: nothing) and what to
        answer, check the transition and write it; all inside the caller's transaction."""
        for _ in range(_RACE_TRIES):
            cur.execute(f"{_SELECT} WHERE path = %s FOR UPDATE", (path,))
            row = cur.fetchone()
            current = _row_to_record(row) if row else None
            old_state = current.state if current else None  # before `decide` changes `current`
            write, answer = decide(current)
            if write is None:
                return answer
            self._guard.check(old_state, write.state, write.path)
            write.updated_at = self._clock()
            values = _row_values(write)
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
            cur.executemany(_UPDATE, [_row_values(r)[1:] + [r.path] for r in updates])
        if not inserts:
            return
        cur.executemany(_INSERT_NEW, [_row_values(r) for r in inserts], returning=True)
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
            row = cur.execute(f"{_SELECT} WHERE path = %s", (str(path),)).fetchone()
            return _row_to_record(row) if row else None

        return self._read(work)

    def in_state(self, *states: str) -> list[FileRecord]:
        return self._read(lambda cur: read_in_state(cur, states))

    def signatures(self) -> dict[str, Signature]:
        def work(cur: Cursor) -> dict[str, Signature]:
            cur.execute("SELECT path, state, size, mtime_ns, inode FROM files")
            return {r[0]: (r[1], r[2], r[3], _int_or_none(r[4])) for r in cur.fetchall()}

        return self._read(work)

    def signature(self, path: Path | str) -> Signature | None:
        def work(cur: Cursor) -> Signature | None:
            row = cur.execute("SELECT state, size, mtime_ns, inode FROM files WHERE path = %s",
                              (str(path),)).fetchone()
            return (row[0], row[1], row[2], _int_or_none(row[3])) if row else None

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
            return [_row_to_record(r) for r in cur.execute(_SELECT).fetchall()]

        return iter(self._read(work))
