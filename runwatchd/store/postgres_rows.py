"""The PostgreSQL store's rows: the files table's columns, their conversion to and from
FileRecord, the reads PostgresStore and the read-only PostgresView share, and how a connection
is made (autocommit, fail fast, keepalives)."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import psycopg

from runwatchd.store import postgres_schema as schema
from runwatchd.store.record import FileRecord

Cursor = psycopg.Cursor[tuple[Any, ...]]
Connection = psycopg.Connection[tuple[Any, ...]]

# Every connection: fail fast when the server is unreachable, notice a vanished peer. A server
# that went silent mid-call (a network partition) fails the call after tcp_user_timeout (ms)
# instead of the keepalives' minute: the heartbeat runs in the daemon's main loop.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 10, "application_name": "runwatchd",
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}
COLUMNS = [f.name for f in fields(FileRecord)]
SELECT = f"SELECT {', '.join(COLUMNS)} FROM files"
_OUTPUTS = COLUMNS.index("outputs")


def row_to_record(row: tuple[Any, ...]) -> FileRecord:
    values = dict(zip(COLUMNS, row))
    values["outputs"] = json.loads(values["outputs"]) if values["outputs"] else []
    values["inode"] = int_or_none(values["inode"])
    return FileRecord(**values)


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)  # NUMERIC comes back as Decimal


def row_values(record: FileRecord) -> list[Any]:
    """The row's values; NUL in a text (an API's message may hold one) becomes U+FFFD, because
    PostgreSQL text cannot hold NUL and the write must not fail for it. A path cannot hold NUL."""
    values: list[Any] = [_no_nul(getattr(record, name)) for name in COLUMNS]
    values[_OUTPUTS] = json.dumps(record.outputs)  # JSON escapes NUL itself
    return values


def _no_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def read_counts(cur: Cursor) -> dict[str, int]:
    # COLLATE "C": byte order, as SQLite and Python sort (a locale's order skips underscores).
    cur.execute('SELECT state, COUNT(*) FROM files GROUP BY state ORDER BY state COLLATE "C"')
    return {str(state): int(n) for state, n in cur.fetchall()}


def read_recent_errors(cur: Cursor, limit: int) -> list[FileRecord]:
    cur.execute(f"{SELECT} WHERE error IS NOT NULL ORDER BY updated_at DESC LIMIT %s", (limit,))
    return [row_to_record(r) for r in cur.fetchall()]


def read_in_state(cur: Cursor, states: tuple[str, ...]) -> list[FileRecord]:
    cur.execute(f"{SELECT} WHERE state = ANY(%s)", (list(states),))
    return [row_to_record(r) for r in cur.fetchall()]


def connect(url: str) -> Connection:
    """One autocommit connection (StoreUnavailable when the server cannot be reached)."""
    try:
        return psycopg.connect(url, autocommit=True, **CONNECT_OPTIONS)
    except psycopg.Error as e:
        raise schema.unavailable(url, e) from None  # the driver's error may hold the URL
