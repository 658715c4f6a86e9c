"""The PostgreSQL store's leases, holders and per-node ownership: SQL over a cursor, and the
dedicated connections that hold advisory locks (store/base.py says what each promises).

Time is the server's (extract(epoch from clock_timestamp())): every node compares expiries with
one clock, so a node whose clock is skewed neither steals live leases nor keeps dead ones.

Proven dead: a holder takes, at its first heartbeat, a session advisory lock (HOLDER_NAMESPACE,
a key derived from its id) on a connection of its own, and its holders row names that lock and
the connection's backend pid. The server drops the lock with the connection, however the process
ended (SIGKILL included: the kernel closes its socket), so a holders row whose backend no longer
holds its lock (pg_locks) names a dead process, and its leases are taken over at once instead of
after they expire. A lease whose holder never beat its heart has no such proof: it ends when it
expires. The failure to fear is the other way round (a live holder taken for dead), and it needs
the lock gone: only the holder's own connection dropping does that, and its next heartbeat takes
a new one (the work it lost meanwhile is another's, which is what a lost lease means).

A server restart (PostgreSQL stopped for maintenance, a fail-over) drops every lock and stops
every heartbeat, so neither proves a death across it: a lock's absence counts only for a holder
that beat since the server started, and a lease of a holder that has not beaten since gets one
lease time from the start to be renewed (its holder's own length, 30 s at least) before it is
taken.

Atomicity: lease() is one INSERT ... ON CONFLICT DO UPDATE ... WHERE (expired, same holder or
dead holder), which locks the conflicting row, so of many askers one wins; take_orphans() locks
its files rows with FOR UPDATE SKIP LOCKED (two askers never pick the same row) and re-checks
each lease in its ON CONFLICT (a lease() that came in between wins).

Ownership: one daemon per node name. Takers serialise on a transaction advisory lock, refuse
while the node's owners row is live (its backend holds its key), else take the first free key of
the node's probe sequence as a session lock (two node names that hash alike get distinct keys)
and write the row.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from typing import Any

import psycopg

from runwatchd.store import postgres_schema as schema
from runwatchd.store.base import HolderInfo, OwnerInfo, holder_node
from runwatchd.store.postgres_rows import Connection, Cursor

# The server's clock, in epoch seconds (DOUBLE PRECISION like the columns).
NOW = "extract(epoch FROM clock_timestamp())::float8"
# When the server (re)started: every advisory lock and every heartbeat stopped there.
SERVER_START = "extract(epoch FROM pg_postmaster_start_time())::float8"
# Seconds from a server start that a lease of a holder not seen since keeps at least: nodes come
# back at their pools' pace (psycopg_pool's reconnect backs off, up to ~16 s after a 30 s outage),
# not at once, and a short lease_seconds must not let the first one back take the others' work.
RESTART_GRACE = 30.0
# holders() forgets a holder this long after its last heartbeat.
FORGET_AFTER = 3600.0
# Keys of a name's probe sequence tried before giving up (each taken key is a live process).
_PROBES = 64
# The transaction advisory lock (in NODE_OWNER_NAMESPACE) that serialises ownership takers:
# 0 is never a derived key (lock_key gives 1 .. 2**31 - 1).
_OWNERSHIP_KEY = 0
_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"


def _holds(namespace: int, row: str) -> str:
    """SQL: the backend `row` names still holds its key (a granted session advisory lock)."""
    return (f"EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted "
            f"AND k.pid = {row}.backend_pid AND k.classid = {namespace}::oid "
            f"AND k.objid = {row}.lock_key::oid AND k.objsubid = 2 AND k.database = {_DATABASE})")


def _dead(holder: str) -> str:
    """SQL: the holder id `holder` is proven dead: registered, its lock is gone, and it took
    that lock since the server started (a restart drops every lock: absence proves nothing
    about a holder that has not beaten its heart since)."""
    return (f"EXISTS (SELECT 1 FROM holders d WHERE d.holder = {holder} "
            f"AND d.heartbeat_at > {SERVER_START} "
            f"AND NOT {_holds(schema.HOLDER_NAMESPACE, 'd')})")


def _restart_grace(holder: str) -> str:
    """SQL: the holder last beat before the server (re)started, and one lease time has not yet
    passed since the start: the server being down stopped every node's heartbeat, so a lease
    that ran out meanwhile is no sign of its holder's death until the holder had a lease time
    to renew it, RESTART_GRACE at least (without this, the first node back takes the others'
    work in progress)."""
    return (f"EXISTS (SELECT 1 FROM holders g WHERE g.holder = {holder} "
            f"AND g.heartbeat_at < {SERVER_START} "
            f"AND {NOW} < {SERVER_START} + greatest(g.alive_until - g.heartbeat_at, "
            f"{RESTART_GRACE}))")


def _lease_ended(lease: str) -> str:
    """SQL: the lease `lease` (a leases row alias) may be taken by another holder. The cheap
    tests first: pg_locks is read only for a lease that has not expired."""
    return (f"CASE WHEN {lease}.expires_at <= {NOW} THEN NOT {_restart_grace(lease + '.holder')} "
            f"ELSE {_dead(lease + '.holder')} END")


_TAKEABLE = f"(l.holder = EXCLUDED.holder OR {_lease_ended('l')})"
_LEASE = (f"INSERT INTO leases AS l (path, holder, expires_at) "
          f"VALUES (%(path)s, %(holder)s, {NOW} + %(seconds)s) ON CONFLICT (path) DO UPDATE "
          f"SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at WHERE {_TAKEABLE} "
          f"RETURNING l.holder")
_HELD_BY = ("SELECT l.holder, h.node FROM leases l LEFT JOIN holders h ON h.holder = l.holder "
            "WHERE l.path = %s")
_ORPHANS = f"""WITH orphans AS (
    SELECT f.path FROM files f LEFT JOIN leases l ON l.path = f.path
    WHERE f.state = ANY(%(states)s) AND (l.path IS NULL OR (l.holder <> %(holder)s
        AND {_lease_ended('l')}))
    ORDER BY f.updated_at LIMIT %(limit)s
    FOR UPDATE OF f SKIP LOCKED)
INSERT INTO leases AS l (path, holder, expires_at)
SELECT path, %(holder)s, {NOW} + %(seconds)s FROM orphans
ON CONFLICT (path) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE l.holder <> EXCLUDED.holder AND {_TAKEABLE}
RETURNING l.path"""
_BEAT = f"""INSERT INTO holders (holder, node, pid, version, started_at, heartbeat_at, in_flight,
    alive_until, lock_key, backend_pid)
VALUES (%(holder)s, %(node)s, %(pid)s, %(version)s, {NOW}, {NOW}, %(in_flight)s,
    {NOW} + %(seconds)s, %(key)s, %(backend)s)
ON CONFLICT (holder) DO UPDATE SET version = EXCLUDED.version,
    heartbeat_at = EXCLUDED.heartbeat_at, in_flight = EXCLUDED.in_flight,
    alive_until = EXCLUDED.alive_until, lock_key = EXCLUDED.lock_key,
    backend_pid = EXCLUDED.backend_pid"""
_HOLDERS = f"""SELECT h.holder, h.node, h.pid, h.version, h.started_at, h.heartbeat_at,
    h.in_flight, h.alive_until > {NOW} AND {_holds(schema.HOLDER_NAMESPACE, 'h')}
FROM holders h WHERE h.heartbeat_at > {NOW} - {FORGET_AFTER}
ORDER BY h.heartbeat_at DESC, h.holder"""
_OWNER = (f"SELECT o.pid, o.node, o.since FROM owners o WHERE o.node = %s "
          f"AND {_holds(schema.NODE_OWNER_NAMESPACE, 'o')}")


# -- leases ------------------------------------------------------------------------------------


def lease(cur: Cursor, path: str, holder: str, seconds: float) -> str | None:
    """None when `holder` now holds `path`'s lease, else the node of the live holder that does."""
    cur.execute(_LEASE, {"path": path, "holder": holder, "seconds": seconds})
    if cur.fetchone() is not None:
        return None
    # ON CONFLICT locked the row: it is still the live holder's when read again.
    row = cur.execute(_HELD_BY, (path,)).fetchone()
    if row is None:  # cannot happen while the row is locked; say who asked rather than fail
        return holder_node(holder)
    return str(row[1]) if row[1] is not None else holder_node(str(row[0]))


def release(cur: Cursor, path: str, holder: str) -> None:
    cur.execute("DELETE FROM leases WHERE path = %s AND holder = %s", (path, holder))


def take_orphans(cur: Cursor, holder: str, states: Collection[str], seconds: float,
                 limit: int) -> list[str]:
    """The paths of the orphans now leased to `holder`; their files rows stay locked until the
    caller's transaction ends (read them in it)."""
    if limit <= 0 or not states:
        return []
    cur.execute(_ORPHANS, {"states": sorted(states), "holder": holder, "seconds": seconds,
                           "limit": limit})
    return [str(r[0]) for r in cur.fetchall()]


def beat(cur: Cursor, holder: str, node: str, lock: SessionLock, seconds: float,
         in_flight: int, version: str) -> None:
    """Record the heartbeat, extend the holder's leases, forget long-gone holders and leases."""
    cur.execute(_BEAT, {"holder": holder, "node": node, "pid": os.getpid(),
                        "version": version or None, "in_flight": in_flight,
                        "seconds": seconds, "key": lock.key, "backend": lock.backend_pid})
    cur.execute(f"UPDATE leases SET expires_at = {NOW} + %s WHERE holder = %s",
                (seconds, holder))
    cur.execute(f"DELETE FROM holders WHERE heartbeat_at < {NOW} - {FORGET_AFTER}")
    # A lease long expired is free anyway; a dead holder's on a finished file would stay forever.
    cur.execute(f"DELETE FROM leases WHERE expires_at < {NOW} - {FORGET_AFTER}")


def leave(cur: Cursor, holder: str) -> None:
    cur.execute("DELETE FROM leases WHERE holder = %s", (holder,))
    cur.execute("DELETE FROM holders WHERE holder = %s", (holder,))


def read_holders(cur: Cursor) -> list[HolderInfo]:
    cur.execute(_HOLDERS)
    return [HolderInfo(holder=r[0], node=r[1], pid=r[2], version=r[3], started_at=r[4],
                       heartbeat_at=r[5], in_flight=int(r[6]), alive=bool(r[7]))
            for r in cur.fetchall()]


def read_owner(cur: Cursor, node: str) -> OwnerInfo | None:
    """The owner of `node`, if its connection still holds its lock."""
    row = cur.execute(_OWNER, (node,)).fetchone()
    return None if row is None else OwnerInfo(pid=row[0], node=row[1], since=row[2])


# -- the dedicated lock connections ------------------------------------------------------------


class SessionLock:
    """One session advisory lock on a connection of its own, held while the connection lives.
    Not thread-safe by itself: its owner serialises the calls."""

    def __init__(self, conn: Connection, key: int) -> None:
        self._conn = conn
        self.key = key
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        self.backend_pid = int(row[0]) if row else 0

    def alive(self) -> bool:
        """Is the connection (and so the lock) still there? A dead one is closed."""
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.close()
            return False

    def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self._conn.execute(sql, params)

    def close(self) -> None:
        """Release the lock (the server drops it with the connection)."""
        self._conn.close()


def take_probed(conn: Connection, namespace: int, name: str) -> SessionLock | None:
    """The first free key of `name`'s probe sequence, locked on `conn` (None: all taken)."""
    for attempt in range(_PROBES):
        key = schema.lock_key(name, attempt)
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (namespace, key)).fetchone()
        if row and row[0]:
            return SessionLock(conn, key)
    return None


def take_node_ownership(conn: Connection, node: str, since: float) -> SessionLock | None:
    """Own `node` on `conn` (autocommit), or None while another live process owns it."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                     (schema.NODE_OWNER_NAMESPACE, _OWNERSHIP_KEY))
        if conn.execute(_OWNER, (node,)).fetchone() is not None:
            return None
        lock = take_probed(conn, schema.NODE_OWNER_NAMESPACE, node)
        if lock is None:
            return None
        conn.execute(
            "INSERT INTO owners (node, pid, since, lock_key, backend_pid) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (node) DO UPDATE SET pid = EXCLUDED.pid, "
            "since = EXCLUDED.since, lock_key = EXCLUDED.lock_key, "
            "backend_pid = EXCLUDED.backend_pid",
            (node, os.getpid(), since, lock.key, lock.backend_pid))
    return lock


class HolderLock:
    """The holder's proof of life: a SessionLock taken at the first heartbeat and taken again
    when its connection was lost (a server restart), so the holder counts as alive again."""

    def __init__(self, connect: Callable[[], Connection], holder: str) -> None:
        self._connect, self._holder = connect, holder
        self._mutex = threading.Lock()
        self._lock: SessionLock | None = None

    def ensure(self) -> SessionLock:
        """The live lock, taken (again) if need be; raises psycopg.Error when it cannot be."""
        with self._mutex:
            if self._lock is not None and self._lock.alive():
                return self._lock
            self._lock = None
            conn = self._connect()
            try:
                lock = take_probed(conn, schema.HOLDER_NAMESPACE, self._holder)
            except BaseException:
                conn.close()
                raise
            if lock is None:
                conn.close()
                raise psycopg.OperationalError("no free advisory lock key for this holder")
            self._lock = lock
            return lock

    def close(self) -> None:
        with self._mutex:
            if self._lock is not None:
                self._lock.close()
                self._lock = None
