"""PostgresStore passes the Store contract; and what only PostgreSQL has: the schema version,
the URL's password kept out of every message, and claims racing on a row that does not exist."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from contract import ClaimContract, RowContract, StoreFactory, race, record, stored
from contract_leases import HolderContract, LeaseContract, OrphanContract
from contract_owner import OwnershipContract, TransitionContract, ViewContract
from postgres_helpers import PostgresServer

from runwatchd.errors import ConfigError, StoreUnavailable
from runwatchd.store import open_store, open_view
from runwatchd.store.postgres_schema import SCHEMA_VERSION

PASSWORD = "s3cret-pw"


@pytest.fixture
def store_factory(tmp_path: Path, postgres_server: PostgresServer,
                  postgres_db: str) -> Iterator[StoreFactory]:
    """Handles on a fresh PostgreSQL store (a database of its own); the state dir (where the
    contract's children wait for their go file) gets no journal."""
    (tmp_path / "state").mkdir()
    factory = StoreFactory(tmp_path / "state", postgres_server.url_of(postgres_db))
    yield factory
    factory.close()
    assert [] == [p.name for p in (tmp_path / "state").iterdir() if p.name != "go"]


class TestPostgresRows(RowContract):
    """The row contract on PostgreSQL."""


class TestPostgresClaims(ClaimContract):
    """The at-most-once contract on PostgreSQL."""


class TestPostgresOwnership(OwnershipContract):
    """The ownership contract on PostgreSQL (a session advisory lock)."""


class TestPostgresTransitions(TransitionContract):
    """The transition check on PostgreSQL."""


class TestPostgresView(ViewContract):
    """The read-only view on PostgreSQL."""


class TestPostgresLeases(LeaseContract):
    """The lease contract on PostgreSQL (the server's clock, advisory locks prove death)."""


class TestPostgresOrphans(OrphanContract):
    """take_orphans on PostgreSQL (FOR UPDATE SKIP LOCKED)."""


class TestPostgresHolders(HolderContract):
    """holders() on PostgreSQL."""


def _set_version(url: str, version: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))


def _versions(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    return [int(r[0]) for r in rows]


def test_a_new_store_records_its_schema_version(store_factory: StoreFactory) -> None:
    """The first open creates the schema and records its version once; reopening adds none."""
    assert store_factory.url is not None
    store_factory.open()
    store_factory.open()
    assert list(range(1, SCHEMA_VERSION + 1)) == _versions(store_factory.url)


def test_a_newer_schema_is_refused_and_left_alone(store_factory: StoreFactory) -> None:
    """A store migrated by a newer runwatchd: store and view refuse it, and alter nothing."""
    url = store_factory.url
    assert url is not None
    store_factory.open().put(record())
    _set_version(url, SCHEMA_VERSION + 2)
    expected = (f"store schema v{SCHEMA_VERSION + 2} is newer than this runwatchd understands "
                f"(v{SCHEMA_VERSION}); upgrade runwatchd")
    for opener in (store_factory.open, store_factory.view):
        with pytest.raises(ConfigError) as caught:
            opener()
        assert [expected] == caught.value.problems
    assert [*range(1, SCHEMA_VERSION + 1), SCHEMA_VERSION + 2] == _versions(url)


def test_two_processes_claim_a_row_that_does_not_exist(store_factory: StoreFactory) -> None:
    """Claims racing on an absent row (INSERT ... ON CONFLICT): exactly one wins."""
    store = store_factory.open()
    results = race(store_factory, "r = FileRecord(path='/hot/new.jpg', state='to_submit', "
                                  f"sha256={'c' * 64!r})\nprint(store.claim_submit(r) is None)",
                   n=6)
    assert ["True"] == [r for r in results if r == "True"]
    assert "submitting" == stored(store, "/hot/new.jpg").state


def test_the_password_is_in_no_error_and_no_log(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """An unreachable server: StoreUnavailable naming the store, password masked, none logged."""
    url = f"postgresql://runwatchd:{PASSWORD}@127.0.0.1:1/runwatchd"
    with caplog.at_level(logging.DEBUG):
        for opener in (open_store, open_view):
            with pytest.raises(StoreUnavailable) as caught:
                opener(tmp_path, url)
            message = str(caught.value)
            assert message.startswith("store postgresql://runwatchd:***@127.0.0.1:1/runwatchd "
                                      "unavailable: ")
            assert PASSWORD not in message
            assert None is caught.value.__cause__
    assert [] == [r for r in caplog.records if PASSWORD in r.getMessage()]


def _drop_connections(admin_url: str) -> None:
    """Terminate every other connection to the database (as a server restart would)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_dropped_connections_are_replaced(postgres_server: PostgresServer, postgres_db: str,
                                          tmp_path: Path) -> None:
    """After the server dropped every connection, the store's pool and the view reconnect (the
    view after one StoreUnavailable); a password in the URL works and is never shown."""
    store = open_store(tmp_path, postgres_server.url_of(postgres_db, password=PASSWORD))
    view = open_view(tmp_path, postgres_server.url_of(postgres_db, password=PASSWORD))
    try:
        store.put(record())
        assert {"to_submit": 1} == view.counts()
        _drop_connections(postgres_server.url_of(postgres_db))
        assert "to_submit" == stored(store).state
        with pytest.raises(StoreUnavailable) as caught:
            view.counts()
        assert PASSWORD not in str(caught.value)
        assert {"to_submit": 1} == view.counts()
    finally:
        view.close()
        store.close()


def test_ownership_lost_with_its_connection_is_taken_again(store_factory: StoreFactory) -> None:
    """The owner lock lives with its connection: once the server dropped it, another handle may
    take ownership, and the old owner's take_ownership() says False instead of a stale True."""
    first, second = store_factory.open(), store_factory.open()
    assert first.take_ownership() is True
    assert store_factory.url is not None
    _drop_connections(store_factory.url)
    assert second.take_ownership() is True
    assert first.take_ownership() is False


def test_unusual_values_round_trip(store_factory: StoreFactory) -> None:
    """A 64-bit inode (NFS) survives; a NUL in a message becomes U+FFFD instead of failing."""
    store = store_factory.open()
    store.put(record(inode=2**64 - 1, error="bad\x00reply"))
    got = stored(store)
    assert (2**64 - 1, "bad\ufffdreply") == (got.inode, got.error)
    assert ("to_submit", 600, 1, 2**64 - 1) == store.signature(got.path)
    assert 2**64 - 1 == store.signatures()[got.path][3]


def test_a_database_that_is_not_utf8_is_refused(postgres_server: PostgresServer,
                                                tmp_path: Path) -> None:
    """A LATIN1 database: ConfigError saying it needs UTF8, and no table created in it."""
    name = f"rwlatin_{os.getpid()}"
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" ENCODING \'LATIN1\' TEMPLATE template0 '
                      "LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        with pytest.raises(ConfigError) as caught:
            open_store(tmp_path, postgres_server.url_of(name))
        assert caught.value.problems[0].startswith("store database encoding is LATIN1; "
                                                   "runwatchd needs UTF8")
        with psycopg.connect(postgres_server.url_of(name)) as conn:
            assert (None,) == conn.execute("SELECT to_regclass('files')").fetchone()
    finally:
        postgres_server.drop_database(name)


def test_without_psycopg_a_postgres_url_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite-only install given a postgresql:// URL: ConfigError naming runwatchd[postgres]."""
    for name in [n for n in sys.modules if n.startswith(("psycopg", "runwatchd.store.postgres"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for opener in (open_store, open_view):
        with pytest.raises(ConfigError) as caught:
            opener(tmp_path, f"postgresql://u:{PASSWORD}@db/x")
        assert "install runwatchd[postgres]" in str(caught.value)
        assert PASSWORD not in str(caught.value)
