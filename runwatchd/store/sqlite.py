"""The default store: one SQLite database (the journal) in the state directory, one host.

Sidecars are the user-facing truth; the journal is what lets a restart (or a crash at any moment)
resume without re-uploading finished files, forgetting failed ones, or submitting a generation
twice. Every state change is committed before the action it guards (WAL mode, so a reader such as
`runwatchd status` never blocks the daemon, and a killed process loses nothing it committed).

States of a row (the order a file goes through them; the allowed moves are lifecycle/states.py's):
    uploading       an upload started; a crash here leaves at most a temp file beside the media
    uploaded        uploaded, sidecar written, no rule applies: done
    to_submit       uploaded, sidecar written, a rule applies, nothing submitted yet
    submitting      the intent: a generation POST is about to be or is being sent; `error` names
                    the time it was sent (a crash here => attention: a task may exist that we do
                    not know). An answer proving no task (429, 502, 503) puts the row back to
                    "to_submit" for the backoff sleep before the next POST claims it again
    running         task id recorded (journal, then sidecar); the follower polls it
    succeeded       task SUCCEEDED and every output downloaded
    task_failed     task FAILED or CANCELLED, or the request was refused: never resubmitted
    attention       a task may exist that we do not know (crash or timeout after the POST):
                    never resubmitted until `runwatchd retry FILE`
    retry           `runwatchd retry FILE` asked for one more submission, on purpose
    awaiting_credits the API said there are no credits: submitted once credits are back
    invalid         a permanent problem (bad file, rule cannot take it): skipped until it changes
    failed          transient failures exhausted for now; retried after `next_attempt` (epoch s)
    no_sidecar      uploaded, but the sidecar could not be written (read-only folder)

Atomicity: one connection per handle behind one thread lock; every write that reads first is one
BEGIN IMMEDIATE transaction, which SQLite serialises among processes too. Ownership is an
exclusive flock on `journal.sqlite3.lock`, which also holds the owner's pid, host and start.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from runwatchd import fsutil
from runwatchd.errors import StoreDamaged
from runwatchd.lifecycle.states import TASK_STATES, FileState
from runwatchd.store import sqlite_leases as leases
from runwatchd.store.base import HolderInfo, OwnerInfo, Signature, new_holder
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite_leases import lock_path, read_owner
from runwatchd.store.transitions import TransitionGuard

JOURNAL_NAME = "journal.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER,
    sha256 TEXT, runway_uri TEXT, uploaded_at REAL,
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL,
    rule_fp TEXT, endpoint TEXT, task_id TEXT, task_status TEXT,
    outputs TEXT, failure TEXT, failure_code TEXT,
    updated_at REAL NOT NULL,
    rule_name TEXT, output_dir TEXT
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
"""
# Columns added after the first release: (name, SQL type). Older journals get them on open.
_ADDED_COLUMNS = (("rule_name", "TEXT"), ("output_dir", "TEXT"))

_COLUMNS = [f.name for f in fields(FileRecord)]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM files"
_INSERT = (f"INSERT OR REPLACE INTO files ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")
_OUTPUTS = _COLUMNS.index("outputs")
# Paths per `IN (...)` when put_many reads the old states (well under SQLite's variable limit).
_STATES_CHUNK = 500


# Paths are TEXT when they are UTF-8 (every row of older journals is), else the BLOB of their
# bytes (os.fsencode: a name with invalid UTF-8 is a str with surrogates, which SQLite's TEXT
# cannot hold). One path always takes the same form, so `path = ?` finds it; reading a BLOB back
# gives the same str (os.fsdecode). Other text (errors, failures) is for people: undecodable
# bytes in it are shown as \xNN escapes.
_PATH_COLUMNS = ("path", "output_dir")


def _key(path: str) -> str | bytes:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _unkey(value: Any) -> Any:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _row_to_record(row: tuple[Any, ...]) -> FileRecord:
    values = dict(zip(_COLUMNS, row))
    values["outputs"] = json.loads(values["outputs"]) if values["outputs"] else []
    for name in _PATH_COLUMNS:
        values[name] = _unkey(values[name])
    return FileRecord(**values)


def _row_values(record: FileRecord) -> list[Any]:
    values: list[Any] = [
        (_key(v) if name in _PATH_COLUMNS and isinstance(v, str)
         else fsutil.utf8_text(v) if isinstance(v, str) else v)
        for name in _COLUMNS for v in (getattr(record, name),)]
    values[_OUTPUTS] = json.dumps(record.outputs)  # ASCII: json escapes surrogates
    return values


# -- reads shared by SqliteStore and the read-only SqliteView ----------------------------------


def read_counts(db: sqlite3.Connection) -> dict[str, int]:
    rows = db.execute("SELECT state, COUNT(*) FROM files GROUP BY state ORDER BY state")
    return {str(state): int(n) for state, n in rows}


def read_recent_errors(db: sqlite3.Connection, limit: int) -> list[FileRecord]:
    rows = db.execute(f"{_SELECT} WHERE error IS NOT NULL ORDER BY updated_at DESC LIMIT ?",
                      (limit,))
    return [_row_to_record(r) for r in rows]


def read_in_state(db: sqlite3.Connection, states: tuple[str, ...]) -> list[FileRecord]:
    marks = ", ".join("?" * len(states))
    rows = db.execute(f"{_SELECT} WHERE state IN ({marks})", states).fetchall()
    return [_row_to_record(r) for r in rows]


def damaged(journal: Path, error: sqlite3.DatabaseError) -> StoreDamaged:
    """The one line `run`, `scan` and `status` print (exit 78) for a journal SQLite cannot read.
    Never reset silently: a fresh journal that forgot a task in flight could submit it again."""
    return StoreDamaged(
        f"the journal {journal} is damaged ({error}): move it aside (mv {journal} "
        f"{journal}.damaged, with its -wal and -shm files if any) and start again. Lost: the "
        "journal's record of uploads and tasks; the sidecars beside your files remain the truth, "
        "so files with one are adopted from it, not uploaded or submitted again")


class SqliteStore:
    """A Store on the journal database: one connection and one lock per handle."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time,
                 strict: bool | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._guard = TransitionGuard(strict)
        self._lock = threading.Lock()
        self._owner_fd: int | None = None
        self._holder = new_holder(socket.gethostname())
        self._started_at = clock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._prepare()
        except sqlite3.DatabaseError as e:
            self._db.close()
            if isinstance(e, sqlite3.OperationalError):  # locked, read-only, ...: not damage
                raise
            raise damaged(path, e) from None

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only power loss can drop the last commit).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA + leases.LEASE_SCHEMA)
        st = os.stat(self.path)  # which file we opened: check_intact() compares the path with it
        self._identity = (st.st_dev, st.st_ino)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        for name, sql_type in _ADDED_COLUMNS:
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE files ADD COLUMN {name} {sql_type}")
                except sqlite3.OperationalError as e:  # another process added it just now
                    if "duplicate column" not in str(e):
                        raise

    # -- ownership ------------------------------------------------------------------------------

    def take_ownership(self) -> bool:
        """flock the journal's lock file; held until close() or the process ends (even by
        SIGKILL, the kernel releases it). The file then names us for owner()."""
        if self._owner_fd is not None:
            return True
        fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._owner_fd = fd
        info = {"pid": os.getpid(), "node": socket.gethostname(), "since": self._clock()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return True

    def owner(self) -> OwnerInfo | None:
        return read_owner(self.path)

    def check_intact(self) -> str | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"the journal {self.path} was deleted"
        except OSError as e:
            return f"the journal {self.path} cannot be looked at ({e.strerror or e})"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"the journal {self.path} was replaced by another file"
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._owner_fd is not None:
                os.ftruncate(self._owner_fd, 0)  # owner() names nobody from now on
                os.close(self._owner_fd)  # releases the flock
                self._owner_fd = None

    # -- writes ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One IMMEDIATE transaction (the write lock taken up front, so a read inside it is
        still true when the write commits), committed unless the block raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _current(self, path: str) -> FileRecord | None:
        row = self._db.execute(f"{_SELECT} WHERE path = ?", (_key(path),)).fetchone()
        return _row_to_record(row) if row else None

    def _state(self, path: str) -> str | None:
        row = self._db.execute("SELECT state FROM files WHERE path = ?", (_key(path),)).fetchone()
        return str(row[0]) if row else None

    def _put(self, record: FileRecord, old_state: str | None) -> None:
        self._guard.check(old_state, record.state, record.path)
        record.updated_at = self._clock()
        self._db.execute(_INSERT, _row_values(record))

    def put(self, record: FileRecord) -> None:
        with self._write():
            self._put(record, self._state(record.path))

    def put_many(self, records: list[FileRecord]) -> None:
        """One transaction, the old states read in batches: one commit per row costs ~90 us,
        which a catch-up scan recording 100,000 files from their sidecars cannot afford."""
        with self._write():
            old = self._states([r.path for r in records])
            now = self._clock()
            for record in records:
                self._guard.check(old.get(record.path), record.state, record.path)
                old[record.path] = record.state  # the same path twice in one batch
                record.updated_at = now
            self._db.executemany(_INSERT, [_row_values(r) for r in records])

    def _states(self, paths: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for i in range(0, len(paths), _STATES_CHUNK):
            chunk = [_key(p) for p in paths[i:i + _STATES_CHUNK]]
            rows = self._db.execute(
                f"SELECT path, state FROM files WHERE path IN ({', '.join('?' * len(chunk))})",
                chunk)
            states.update((_unkey(p), str(s)) for p, s in rows)
        return states

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        record.state = FileState.SUBMITTING
        return self.put_unless_claimed(record)

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None:
        with self._write():
            current = self._current(record.path)
            if (current is not None and current.state in TASK_STATES
                    and (record.sha256 is None or current.sha256 == record.sha256)):
                return current
            self._put(record, current.state if current else None)
            return None

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None:
        with self._write():
            record = self._current(str(path))
            if record is None:
                return None
            old_state = record.state
            for key, value in changes.items():
                setattr(record, key, value)
            self._put(record, old_state)
            return record

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool:
        with self._write():
            record = self._current(str(path))
            if record is None or record.state != expected_state:
                return False
            for key, value in changes.items():
                setattr(record, key, value)
            self._put(record, expected_state)
            return True

    def delete(self, path: Path | str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE path = ?", (_key(str(path)),))

    # -- reads ----------------------------------------------------------------------------------

    def get(self, path: Path | str) -> FileRecord | None:
        with self._lock:
            return self._current(str(path))

    def in_state(self, *states: str) -> list[FileRecord]:
        with self._lock:
            return read_in_state(self._db, states)

    def signatures(self) -> dict[str, Signature]:
        with self._lock:
            rows = self._db.execute("SELECT path, state, size, mtime_ns, inode FROM files")
            return {_unkey(r[0]): (r[1], r[2], r[3], r[4]) for r in rows}

    def signature(self, path: Path | str) -> Signature | None:
        with self._lock:
            row = self._db.execute("SELECT state, size, mtime_ns, inode FROM files WHERE path = ?",
                                   (_key(str(path)),)).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    def output_dirs(self) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT output_dir FROM files WHERE output_dir IS NOT NULL").fetchall()
        return {_unkey(r[0]) for r in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return read_counts(self._db)

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        with self._lock:
            return read_recent_errors(self._db, limit)

    def __iter__(self) -> Iterator[FileRecord]:
        with self._lock:
            rows = self._db.execute(_SELECT).fetchall()
        return iter([_row_to_record(r) for r in rows])

    # -- leases (store/sqlite_leases.py) ---------------------------------------------------------

    @property
    def holder(self) -> str:
        return self._holder

    def lease(self, path: Path | str, seconds: float) -> str | None:
        with self._write():
            now = self._clock()
            return leases.lease(self._db, _key(str(path)), self._holder, now + seconds, now)

    def release(self, path: Path | str) -> None:
        with self._write():
            leases.release(self._db, _key(str(path)), self._holder)

    def heartbeat(self, seconds: float, *, in_flight: int = 0, version: str = "") -> None:
        with self._write():
            leases.heartbeat(self._db, self._holder, now=self._clock(), seconds=seconds,
                             in_flight=in_flight, version=version, started_at=self._started_at)

    def take_orphans(self, states: Collection[str], seconds: float,
                     limit: int = 500) -> list[FileRecord]:
        with self._write():
            now = self._clock()
            taken = []
            for key in leases.orphan_keys(self._db, states, self._holder, now, limit):
                leases.lease(self._db, key, self._holder, now + seconds, now)
                taken.append(self._current(_unkey(key)))
            return [r for r in taken if r is not None]

    def leave(self) -> None:
        with self._write():
            leases.leave(self._db, self._holder)

    def holders(self) -> list[HolderInfo]:
        with self._lock:
            return leases.read_holders(self._db, self._clock())
