"""The daemon's memory across restarts: one SQLite row per media file.

Sidecars are the user-facing truth; the journal is what lets a restart (or a crash at any moment)
resume without re-uploading finished files, forgetting failed ones, or submitting a generation
twice. Every state change is committed before the action it guards (WAL mode, so a reader such as
`runwatchd status` never blocks the daemon, and a killed process loses nothing it committed).

States of a row (the order a file goes through them):
    uploading       an upload started; a crash here leaves at most a temp file beside the media
    uploaded        uploaded, sidecar written, no rule applies: done
    to_submit       uploaded, sidecar written, a rule applies, nothing submitted yet
    submitting      the intent: a generation POST is about to be or is being sent
                    (a crash here => attention: a task may exist that we do not know)
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

At most once: a generation is submitted only through `claim_submit`, which atomically (across
threads and processes) refuses when the row already holds a task for the same content.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from runwatchd.lifecycle.states import TASK_STATES
from runwatchd.store.record import FileRecord

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


def _row_to_record(row: sqlite3.Row) -> FileRecord:
    values = dict(zip(_COLUMNS, row))
    values["outputs"] = json.loads(values["outputs"]) if values["outputs"] else []
    return FileRecord(**values)


class SqliteStore:
    """Thread-safe access to the journal database (one connection, one lock)."""

    def __init__(self, path: Path, *, clock=time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._owner_fd: int | None = None
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only power loss can drop the last commit).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        for name, sql_type in _ADDED_COLUMNS:
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE files ADD COLUMN {name} {sql_type}")
                except sqlite3.OperationalError as e:  # another process added it just now
                    if "duplicate column" not in str(e):
                        raise

    def take_ownership(self) -> bool:
        """Take the advisory lock that says "this process runs the daemon on this journal";
        False if another process holds it. Held until close() or the process ends (even by
        SIGKILL), so only the owner repairs work in progress after a crash."""
        if self._owner_fd is not None:
            return True
        fd = os.open(self.path.with_name(self.path.name + ".lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._owner_fd = fd
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._owner_fd is not None:
                os.close(self._owner_fd)  # releases the flock
                self._owner_fd = None

    def get(self, path: Path | str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE path = ?", (str(path),)).fetchone()
        return _row_to_record(row) if row else None

    def put(self, record: FileRecord) -> None:
        """Insert or replace the whole row (committed when this returns)."""
        with self._lock:
            self._put(record)

    def put_many(self, records: list[FileRecord]) -> None:
        """put() for many rows in one transaction: one commit per row costs ~90 us, which a
        catch-up scan recording 100,000 files from their sidecars cannot afford."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for record in records:
                    self._put(record)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _put(self, record: FileRecord) -> None:
        record.updated_at = self._clock()
        values: list[Any] = [getattr(record, name) for name in _COLUMNS]
        values[_COLUMNS.index("outputs")] = json.dumps(record.outputs)
        self._db.execute(
            f"INSERT OR REPLACE INTO files ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))})",
            values,
        )

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        """Record the intent to submit `record` (state "submitting") unless the row already holds
        a task for the same content; returns None on success, else the row that holds it.

        One IMMEDIATE transaction, so two threads or two processes (the daemon and
        `runwatchd retry`) can never both claim the same file content."""
        record.state = "submitting"
        return self.put_unless_claimed(record)

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None:
        """Write `record` unless the row holds a task (TASK_STATES) for the same content, or for
        any content when `record.sha256` is not known yet; returns None if written, else the row
        that holds the task. Every write made before a claim goes through here, so a second
        process looking at the same file can never wipe out the first one's claim."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(f"{_SELECT} WHERE path = ?", (record.path,)).fetchone()
                current = _row_to_record(row) if row else None
                if (current is not None and current.state in TASK_STATES
                        and (record.sha256 is None or current.sha256 == record.sha256)):
                    self._db.execute("ROLLBACK")
                    return current
                self._put(record)
                self._db.execute("COMMIT")
                return None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None:
        """Change some columns of an existing row; returns the new record (None if absent)."""
        record = self.get(path)
        if record is None:
            return None
        for key, value in changes.items():
            setattr(record, key, value)
        self.put(record)
        return record

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool:
        """Change some columns only if the row is still in `expected_state` (atomic across
        processes); True if changed. `runwatchd retry` uses it beside a running daemon."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(f"{_SELECT} WHERE path = ?", (str(path),)).fetchone()
                record = _row_to_record(row) if row else None
                if record is None or record.state != expected_state:
                    self._db.execute("ROLLBACK")
                    return False
                for key, value in changes.items():
                    setattr(record, key, value)
                self._put(record)
                self._db.execute("COMMIT")
                return True
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def delete(self, path: Path | str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE path = ?", (str(path),))

    def in_state(self, *states: str) -> list[FileRecord]:
        marks = ", ".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(f"{_SELECT} WHERE state IN ({marks})", states).fetchall()
        return [_row_to_record(r) for r in rows]

    def signatures(self) -> dict[str, tuple[str, int | None, int | None, int | None]]:
        """path -> (state, size, mtime_ns, inode) for every row: lets the startup scan skip
        finished files without reading their sidecars."""
        with self._lock:
            rows = self._db.execute("SELECT path, state, size, mtime_ns, inode FROM files")
            return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def signature(self, path: Path | str) -> tuple[str, int | None, int | None, int | None] | None:
        """(state, size, mtime_ns, inode) of one row, as `signatures()` has it for every row."""
        with self._lock:
            row = self._db.execute("SELECT state, size, mtime_ns, inode FROM files WHERE path = ?",
                                   (str(path),)).fetchone()
        return tuple(row) if row else None

    def output_dirs(self) -> set[str]:
        """Every folder generations were downloaded (or are to be) into."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT output_dir FROM files WHERE output_dir IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        return {state: n for state, n in rows}

    def __iter__(self) -> Iterator[FileRecord]:
        with self._lock:
            rows = self._db.execute(_SELECT).fetchall()
        return iter([_row_to_record(r) for r in rows])


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection for `runwatchd status` while the daemon writes."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout=5000")
    return db
