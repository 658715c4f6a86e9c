"""The PostgreSQL store's schema, its migrations, and what its errors may say.

Tables (one database per store: the names are not prefixed, so give runwatchd its own database
or its own schema through the URL's search_path):
    schema_version  one row per migration applied; a version newer than SCHEMA_VERSION is refused
                    (never altered: a newer runwatchd owns it)
    files           one row per media file, keyed by path like SQLite's journal (inode is
                    NUMERIC: an NFS file id may use all 64 bits, past BIGINT); `node` is
                    reserved (nullable, unused today) for the cluster page: next, rows get a
                    share-relative identity (the folder's `share` plus the relative path) so that
                    every node names a file alike, and `node` says who last worked on it
    owners          one row per node (v2; v1 had one row for the store): the pid and start of
                    the process holding that node's owner advisory lock, the lock's key and that
                    connection's backend pid (a row whose backend no longer holds the lock names
                    nobody)
    leases          (v2) path -> holder and expiry (epoch seconds of the server's clock, so nodes
                    with skewed clocks agree); see postgres_leases.py
    holders         (v2) one row per process that beats its heart: node, pid, version, start,
                    last beat, in flight, until when its leases run, and the backend pid and key
                    of the advisory lock it holds while it lives (gone with it: proven dead)

Creation and migration run in one transaction under a transaction-level advisory lock, so two
processes opening a new store at once do not both create it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from runwatchd.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 2

# Advisory lock keys (the two-int4 form: pg_locks shows classid = namespace, objid = key,
# objsubid = 2). Advisory locks are per database, like the store. Node owners and holders each
# have a namespace of their own, their keys derived from a name (lock_key), so that no derived
# key can ever collide with the fixed keys or with one of the other kind.
LOCK_NAMESPACE = 0x52574400  # "RWD\0"
OWNER_KEY = 1  # v1's one owner per store (kept reserved)
SCHEMA_KEY = 2
NODE_OWNER_NAMESPACE = LOCK_NAMESPACE + 1
HOLDER_NAMESPACE = LOCK_NAMESPACE + 2

# Each version's statements, applied in order from the store's version to SCHEMA_VERSION.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE files (
            path TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            size BIGINT, mtime_ns BIGINT, ctime_ns BIGINT,
            inode NUMERIC(20, 0),
            sha256 TEXT, runway_uri TEXT, uploaded_at DOUBLE PRECISION,
            error TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt DOUBLE PRECISION,
            rule_fp TEXT, endpoint TEXT, task_id TEXT, task_status TEXT,
            outputs TEXT, failure TEXT, failure_code TEXT,
            updated_at DOUBLE PRECISION NOT NULL,
            rule_name TEXT, output_dir TEXT,
            node TEXT
        )""",
        "CREATE INDEX files_state ON files (state)",
        """CREATE TABLE owners (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER, node TEXT, since DOUBLE PRECISION,
            backend_pid INTEGER NOT NULL
        )""",
    ),
    2: (
        # Ownership per node: the old row named the one owner of the store; an owner row only
        # means something while its connection holds the lock, so nothing is lost with it.
        "DROP TABLE owners",
        """CREATE TABLE owners (
            node TEXT PRIMARY KEY,
            pid INTEGER, since DOUBLE PRECISION,
            lock_key INTEGER NOT NULL,
            backend_pid INTEGER NOT NULL
        )""",
        """CREATE TABLE leases (
            path TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX leases_holder ON leases (holder)",
        """CREATE TABLE holders (
            holder TEXT PRIMARY KEY,
            node TEXT NOT NULL, pid INTEGER, version TEXT,
            started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL,
            in_flight INTEGER NOT NULL DEFAULT 0,
            alive_until DOUBLE PRECISION NOT NULL,
            lock_key INTEGER NOT NULL,
            backend_pid INTEGER NOT NULL
        )""",
    ),
}


def lock_key(name: str, attempt: int = 0) -> int:
    """The advisory key of `name` (a node or a holder id): 31 bits of its SHA-256, positive so
    that pg_locks' objid (an oid) shows it unchanged; `attempt` walks on to the next keys when
    another name hashed to the same one (a probe sequence every process walks alike)."""
    digest = int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()[:4],
                            "big")
    return (digest + attempt) % 0x7FFFFFFF + 1

VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version ("
                  "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")


def stored_version(conn: psycopg.Connection[tuple[object, ...]]) -> int | None:
    """The store's schema version; None when it has none yet (never created)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(str(row[0])) if row and row[0] is not None else None


def refuse_newer(version: int | None) -> None:
    """ConfigError when the store was made by a newer runwatchd (it is left as it is)."""
    if version is not None and version > SCHEMA_VERSION:
        raise ConfigError([f"store schema v{version} is newer than this runwatchd understands "
                           f"(v{SCHEMA_VERSION}); upgrade runwatchd"])


def refuse_encoding(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """ConfigError unless the database stores UTF-8: paths and messages are any Unicode text,
    and a LATIN1 or SQL_ASCII database would refuse or mangle some of them, one file at a time."""
    row = conn.execute("SHOW server_encoding").fetchone()
    encoding = str(row[0]) if row else "?"
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise ConfigError([f"store database encoding is {encoding}; runwatchd needs UTF8 "
                           "(CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"])


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create or bring the schema up to SCHEMA_VERSION (one transaction); refuse a newer one,
    and a database that does not store UTF-8."""
    refuse_encoding(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, SCHEMA_KEY))
        conn.execute(VERSION_TABLE)
        version = stored_version(conn) or 0
        refuse_newer(version)
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (step,))


def redact(url: str) -> str:
    """The URL with its password replaced by ***: what messages and check-config may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def unavailable(url: str, error: BaseException) -> StoreUnavailable:
    """StoreUnavailable for a failed call on the store at `url`: one line, never the password
    (scrubbed from the driver's message too, in case it ever quotes the URL)."""
    text = " ".join(str(error).split()) or type(error).__name__
    password = urlsplit(url).password
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return StoreUnavailable(f"store {redact(url)} unavailable: {text}")
