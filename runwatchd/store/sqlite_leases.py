"""Who works on a SQLite store: its owner (a flock) and the holders of leases on its files.

One host reaches a SQLite journal, so a holder is proven dead when its pid is gone from this host
(the holder id names node and pid: "<node>:<pid>:<tag>"); otherwise its leases last until they
expire. The tables (created with the journal, in sqlite.py's SCHEMA):

    leases   path -> holder, expires_at (epoch s): one row per file some process works on
    holders  holder -> node, pid, version, started_at, heartbeat_at, in_flight, lease_seconds

Every function here runs inside the caller's transaction (SqliteStore._write) or a read.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Any

from runwatchd import fsutil
from runwatchd.store.base import HolderInfo, OwnerInfo, holder_node

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (path PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS leases_holder ON leases(holder);
CREATE TABLE IF NOT EXISTS holders (
    holder TEXT PRIMARY KEY, node TEXT NOT NULL, pid INTEGER, version TEXT,
    started_at REAL, heartbeat_at REAL, in_flight INTEGER NOT NULL DEFAULT 0, lease_seconds REAL
);
"""
# A holder that has not beaten its heart for this long is forgotten by holders().
FORGET_AFTER = 3600.0


def holder_dead(holder: str) -> bool:
    """Proven dead: a holder of this host whose process is gone (another host's cannot be told)."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return False
    try:
        return not fsutil.pid_exists(int(parts[1]))
    except ValueError:
        return False


def lease(db: sqlite3.Connection, key: Any, holder: str, until: float, now: float) -> str | None:
    row = db.execute("SELECT holder, expires_at FROM leases WHERE path = ?", (key,)).fetchone()
    if row is not None and row[0] != holder and row[1] > now and not holder_dead(row[0]):
        return holder_node(row[0])
    db.execute("INSERT OR REPLACE INTO leases (path, holder, expires_at) VALUES (?, ?, ?)",
               (key, holder, until))
    return None


def release(db: sqlite3.Connection, key: Any, holder: str) -> None:
    db.execute("DELETE FROM leases WHERE path = ? AND holder = ?", (key, holder))


def heartbeat(db: sqlite3.Connection, holder: str, *, now: float, seconds: float,
              in_flight: int, version: str, started_at: float) -> None:
    db.execute("UPDATE leases SET expires_at = ? WHERE holder = ?", (now + seconds, holder))
    db.execute(
        "INSERT INTO holders (holder, node, pid, version, started_at, heartbeat_at, in_flight, "
        "lease_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (holder) DO UPDATE SET "
        "version = excluded.version, heartbeat_at = excluded.heartbeat_at, "
        "in_flight = excluded.in_flight, lease_seconds = excluded.lease_seconds",
        (holder, holder_node(holder), os.getpid(), version, started_at, now, in_flight, seconds))
    db.execute("DELETE FROM holders WHERE heartbeat_at < ?", (now - FORGET_AFTER,))


def orphan_keys(db: sqlite3.Connection, states: Collection[str], holder: str, now: float,
                limit: int) -> list[Any]:
    """The keys of rows in `states` no live holder leases (not this holder's own)."""
    marks = ", ".join("?" * len(states))
    rows = db.execute(
        f"SELECT f.path, l.holder, l.expires_at FROM files f LEFT JOIN leases l ON l.path = f.path "
        f"WHERE f.state IN ({marks}) AND (l.holder IS NULL OR l.holder != ?)",
        (*states, holder)).fetchall()
    keys = [key for key, other, expires in rows
            if other is None or expires <= now or holder_dead(other)]
    return keys[:limit]


def leave(db: sqlite3.Connection, holder: str) -> None:
    db.execute("DELETE FROM leases WHERE holder = ?", (holder,))
    db.execute("DELETE FROM holders WHERE holder = ?", (holder,))


def read_holders(db: sqlite3.Connection, now: float) -> list[HolderInfo]:
    try:
        rows = db.execute(
            "SELECT holder, node, pid, version, started_at, heartbeat_at, in_flight, "
            "lease_seconds FROM holders ORDER BY heartbeat_at DESC").fetchall()
    except sqlite3.OperationalError:  # a journal made before leases, read-only: nobody yet
        return []
    return [HolderInfo(holder=h, node=node, pid=pid, version=version, started_at=started,
                       heartbeat_at=beat, in_flight=int(in_flight or 0),
                       alive=(beat is not None and beat + (seconds or 0) > now
                              and not holder_dead(h)))
            for h, node, pid, version, started, beat, in_flight, seconds in rows
            if beat is None or beat >= now - FORGET_AFTER]


# -- the owner: one daemon per journal -----------------------------------------------------------


def lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


def read_owner(journal: Path) -> OwnerInfo | None:
    """The owner its lock file names, if that process still lives (as far as this host can
    tell: another host's pid cannot be checked, so it is believed)."""
    try:
        data = json.loads(lock_path(journal).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no owner ever, released (emptied) on close, or not ours to read
    if not isinstance(data, dict):
        return None
    pid, node, since = data.get("pid"), data.get("node"), data.get("since")
    info = OwnerInfo(pid=pid if isinstance(pid, int) else None,
                     node=node if isinstance(node, str) else None,
                     since=float(since) if isinstance(since, (int, float)) else None)
    if info.node == socket.gethostname() and not fsutil.pid_exists(info.pid):
        return None  # killed while owning: the flock went with it, the file stayed
    return info

