"""The daemon's memory across restarts: one SQLite row per media file.

Sidecars are the user-facing truth; the journal is what lets a restart (or a crash at any moment)
resume without re-uploading finished files, forgetting failed ones, or submitting a generation
twice. Every state change is committed before the action it guards (WAL mode, so a reader such as
`runwatchd status` never blocks the daemon, and a killed process loses nothing it committed).

States of a row:
    uploaded        uploaded, sidecar written, no rule applies (or generation done, see below)
    invalid         a permanent problem (bad file, rule rejected it): not retried until the file changes
    failed          transient failures exhausted for now; retried after `next_attempt` (epoch seconds)
    no_sidecar      uploaded, but the sidecar could not be written (read-only folder): kept here
    submitting      intent recorded, the generation POST is under way (a crash here => attention)
    running         task id recorded; the follower polls it
    succeeded       task SUCCEEDED and every output downloaded
    task_failed     task FAILED or CANCELLED (or the API refused the request): never resubmitted
    attention       a task may exist that we do not know (crash or timeout after the POST):
                    never resubmitted until `runwatchd retry FILE`
    awaiting_credits the API said there are no credits: resubmitted once credits are back
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER,
    sha256 TEXT, runway_uri TEXT, uploaded_at REAL,
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL,
    rule_fp TEXT, endpoint TEXT, task_id TEXT, task_status TEXT,
    outputs TEXT, failure TEXT, failure_code TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
"""

TASK_STATES = ("submitting", "running", "succeeded", "task_failed", "attention", "awaiting_credits")
FINAL_STATES = ("uploaded", "succeeded", "task_failed")


@dataclass
class FileRecord:
    """One row of the journal."""

    path: str
    state: str
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    inode: int | None = None
    sha256: str | None = None
    runway_uri: str | None = None
    uploaded_at: float | None = None
    error: str | None = None
    attempts: int = 0
    next_attempt: float | None = None
    rule_fp: str | None = None
    endpoint: str | None = None
    task_id: str | None = None
    task_status: str | None = None
    outputs: list[str] = field(default_factory=list)
    failure: str | None = None
    failure_code: str | None = None
    updated_at: float = 0.0

    def same_file(self, size: int, mtime_ns: int, inode: int) -> bool:
        """True when the row describes this version of the file (ctime is left out on purpose:
        a chmod or a hard link changes it without changing the content)."""
        return (self.size, self.mtime_ns, self.inode) == (size, mtime_ns, inode)


_COLUMNS = [f.name for f in fields(FileRecord)]


def _row_to_record(row: sqlite3.Row) -> FileRecord:
    values = dict(zip(_COLUMNS, row))
    values["outputs"] = json.loads(values["outputs"]) if values["outputs"] else []
    return FileRecord(**values)


class Journal:
    """Thread-safe access to the journal database (one connection, one lock)."""

    def __init__(self, path: Path, *, clock=time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only power loss can drop the last commit).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, path: Path | str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM files WHERE path = ?", (str(path),)
            ).fetchone()
        return _row_to_record(row) if row else None

    def put(self, record: FileRecord) -> None:
        """Insert or replace the whole row (committed when this returns)."""
        record.updated_at = self._clock()
        values: list[Any] = [getattr(record, name) for name in _COLUMNS]
        values[_COLUMNS.index("outputs")] = json.dumps(record.outputs)
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO files ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                values,
            )

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None:
        """Change some columns of an existing row; returns the new record (None if absent)."""
        record = self.get(path)
        if record is None:
            return None
        for key, value in changes.items():
            setattr(record, key, value)
        self.put(record)
        return record

    def delete(self, path: Path | str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE path = ?", (str(path),))

    def in_state(self, *states: str) -> list[FileRecord]:
        marks = ", ".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM files WHERE state IN ({marks})", states
            ).fetchall()
        return [_row_to_record(r) for r in rows]

    def signatures(self) -> dict[str, tuple[str, int | None, int | None, int | None]]:
        """path -> (state, size, mtime_ns, inode) for every row: lets the startup scan skip
        finished files without reading their sidecars."""
        with self._lock:
            rows = self._db.execute("SELECT path, state, size, mtime_ns, inode FROM files")
            return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        return {state: n for state, n in rows}

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM files WHERE error IS NOT NULL "
                "ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row_to_record(r) for r in rows]

    def __iter__(self) -> Iterator[FileRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files").fetchall()
        return iter([_row_to_record(r) for r in rows])


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection for `runwatchd status` while the daemon writes."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout=5000")
    return db
