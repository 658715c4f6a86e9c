"""open_store / open_view: the one place that knows which backend a store is and where it lives.

    url                      backend
    None (the default)       SQLite, `journal.sqlite3` in the state directory
    sqlite:///ABS/PATH       SQLite, that file
A PostgreSQL backend ("postgresql://...", from `[store] url` or $RUNWATCHD_STORE_URL) comes next;
until then any other scheme is a ConfigError, never a silent fallback to a local journal.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from runwatchd.errors import ConfigError
from runwatchd.store.base import Store, StoreView
from runwatchd.store.sqlite import JOURNAL_NAME, SqliteStore
from runwatchd.store.sqlite_view import SqliteView

SCHEMES = ("sqlite",)


def open_store(state_dir: Path, url: str | None = None, *,
               strict: bool | None = None) -> Store:
    """The store the daemon and the commands write (created if missing); the caller closes it.
    `strict`: raise on a disallowed transition instead of warning (None: from the environment,
    $RUNWATCHD_STRICT_TRANSITIONS)."""
    return SqliteStore(_sqlite_path(state_dir, url), strict=strict)


def open_view(state_dir: Path, url: str | None = None) -> StoreView:
    """A read-only view of the same store (status); never creates it. The caller closes it."""
    return SqliteView(_sqlite_path(state_dir, url))


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
