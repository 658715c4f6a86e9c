"""open_store / open_view: the one place that knows which backend a store is and where it lives.

    url                          backend
    None (the default)           SQLite, `journal.sqlite3` in the state directory
    sqlite:///ABS/PATH           SQLite, that file
    postgresql://... postgres:// PostgreSQL (store/postgres.py; needs `runwatchd[postgres]`)
The URL comes from `[store] url` or $RUNWATCHD_STORE_URL. Any other scheme is a ConfigError, never
a silent fallback to a local journal; no message ever shows the URL's password.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from runwatchd.errors import ConfigError
from runwatchd.store.base import Store, StoreView
from runwatchd.store.sqlite import JOURNAL_NAME, SqliteStore
from runwatchd.store.sqlite_view import SqliteView

POSTGRES_SCHEMES = ("postgresql", "postgres")
SCHEMES = ("sqlite", *POSTGRES_SCHEMES)
_MISSING_DRIVER = ("store.url: a PostgreSQL store needs psycopg and psycopg-pool; install "
                   "runwatchd[postgres] (pip install 'runwatchd[postgres]')")


def open_store(state_dir: Path, url: str | None = None, *, strict: bool | None = None,
               node: str | None = None, max_connections: int = 12) -> Store:
    """The store the daemon and the commands write (created if missing); the caller closes it.
    `strict`: raise on a disallowed transition instead of warning (None: from the environment,
    $RUNWATCHD_STRICT_TRANSITIONS). `node` names this host in a shared store (default: the host
    name); `max_connections` caps a PostgreSQL store's pool."""
    if is_postgres(url):
        assert url is not None
        try:
            from runwatchd.store.postgres import PostgresStore
        except ImportError:
            raise ConfigError([_MISSING_DRIVER]) from None
        return PostgresStore(url, node=node, max_connections=max_connections, strict=strict)
    return SqliteStore(_sqlite_path(state_dir, url), strict=strict)


def open_view(state_dir: Path, url: str | None = None, *, node: str | None = None) -> StoreView:
    """A read-only view of the same store (status); never creates it. The caller closes it.
    `node`: whose owner owner() names in a shared store (default: the host name)."""
    if is_postgres(url):
        assert url is not None
        try:
            from runwatchd.store.postgres_view import PostgresView
        except ImportError:
            raise ConfigError([_MISSING_DRIVER]) from None
        return PostgresView(url, node=node)
    return SqliteView(_sqlite_path(state_dir, url))


def is_postgres(url: str | None) -> bool:
    return url is not None and urlsplit(url).scheme in POSTGRES_SCHEMES


def describe(state_dir: Path, url: str | None) -> str:
    """Which store, for a person (check-config): the backend and where, never the password."""
    if is_postgres(url):
        from runwatchd.store.postgres_schema import redact

        assert url is not None
        return f"PostgreSQL {redact(url)}"
    return f"SQLite {_sqlite_path(state_dir, url)}"


def _sqlite_path(state_dir: Path, url: str | None) -> Path:
    if url is None:
        return state_dir / JOURNAL_NAME
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        # Only the scheme: a database URL may carry a password.
        raise ConfigError([(f"store.url: unknown scheme {parts.scheme or '(none)'!r} (known: "
                            f"{', '.join(SCHEMES)}; the default is SQLite in the state "
                            "directory)")])
    path = Path(unquote(parts.path))
    if parts.netloc or not path.is_absolute() or not path.name:
        raise ConfigError([f"store.url: expected sqlite:///ABSOLUTE/PATH, got {url!r}"])
    return path
