"""What only PostgreSQL's leases have: a closed handle proven dead through its advisory lock,
ownership per node, advisory keys that collide, the server's clock, and a v1 store migrated in
place (the lease contract itself runs in test_postgres_store.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from contract import StoreFactory, record, stored
from contract_leases import LONG, PAST_SHORT, SHORT, eventually, holder_info, node_of
from postgres_helpers import PostgresServer

from runwatchd.lifecycle.states import FileState
from runwatchd.store import postgres_schema as schema
from runwatchd.store.postgres import PostgresStore

S = FileState
A = "/hot/a.jpg"


@pytest.fixture
def store_factory(tmp_path: Path, postgres_server: PostgresServer,
                  postgres_db: str) -> Iterator[StoreFactory]:
    """Handles on a fresh PostgreSQL store (a database of its own)."""
    (tmp_path / "state").mkdir()
    factory = StoreFactory(tmp_path / "state", postgres_server.url_of(postgres_db))
    yield factory
    factory.close()


def _url(factory: StoreFactory) -> str:
    assert factory.url is not None
    return factory.url


def test_a_closed_handle_without_leave_is_dead_at_once(store_factory: StoreFactory) -> None:
    """close() without leave() drops the holder's lock: its long leases are taken over at once,
    and holders() still lists it, dead."""
    first, second = store_factory.open(node="alpha"), store_factory.open(node="beta")
    first.heartbeat(LONG)
    first.lease(A, LONG)
    assert "alpha" == second.lease(A, LONG)
    holder = first.holder
    first.close()
    assert eventually(lambda: second.lease(A, LONG) is None)
    info = holder_info(second, holder)
    assert ("alpha", False) == (info.node if info else None, info.alive if info else None)


def test_a_holder_that_never_beat_keeps_its_leases_until_they_expire(
        store_factory: StoreFactory) -> None:
    """Without a heartbeat there is no lock to prove death by: a closed handle's lease ends when
    it expires, not before."""
    first, second = store_factory.open(node="alpha"), store_factory.open()
    first.lease(A, SHORT)
    first.close()
    assert "alpha" == second.lease(A, LONG)
    time.sleep(PAST_SHORT)
    assert None is second.lease(A, LONG)


def test_a_holder_whose_connection_dropped_beats_itself_alive_again(
        store_factory: StoreFactory) -> None:
    """The server dropped the holder's lock connection (a restart): it counts as dead until its
    next heartbeat takes a new lock, then as alive, with the leases it still holds."""
    store, other = store_factory.open(node="alpha"), store_factory.open(node="beta")
    store.heartbeat(LONG)
    store.lease(A, LONG)
    with psycopg.connect(_url(store_factory), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(backend_pid) FROM holders WHERE holder = %s",
                      (store.holder,))
    assert eventually(lambda: False is getattr(holder_info(other, store.holder), "alive", None))
    store.heartbeat(LONG)
    assert True is getattr(holder_info(other, store.holder), "alive", None)
    assert "alpha" == other.lease(A, LONG)


def test_a_taken_holder_key_is_walked_past(store_factory: StoreFactory) -> None:
    """Another session holds the key the holder id hashes to: the holder takes the next one,
    and counts as alive (its proof is the key its row names)."""
    store, other = store_factory.open(), store_factory.open()
    with psycopg.connect(_url(store_factory), autocommit=True) as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s, %s)",
                         (schema.HOLDER_NAMESPACE, schema.lock_key(store.holder)))
        store.heartbeat(LONG)
        store.lease(A, LONG)
        assert True is getattr(holder_info(other, store.holder), "alive", None)
        assert node_of(store) == other.lease(A, LONG)


def test_one_owner_per_node(store_factory: StoreFactory) -> None:
    """Several nodes each run a daemon on one store: one owner per node name, and owner() names
    the owner of the asker's node."""
    alpha, beta = store_factory.open(node="alpha"), store_factory.open(node="beta")
    alpha_again = store_factory.open(node="alpha")
    assert [True, True, False] == [alpha.take_ownership(), beta.take_ownership(),
                                   alpha_again.take_ownership()]
    assert ["alpha", "beta"] == [getattr(s.owner(), "node", None) for s in (alpha_again, beta)]
    assert "beta" == getattr(store_factory.view(node="beta").owner(), "node", None)
    assert None is store_factory.view(node="gamma").owner()
    alpha.close()
    assert None is alpha_again.owner()
    assert alpha_again.take_ownership() is True


def test_node_owner_keys_that_collide_are_walked_past(store_factory: StoreFactory) -> None:
    """Another session holds the key node "alpha" hashes to (as another node's owner would):
    alpha's daemon still owns, once, on the next key."""
    with psycopg.connect(_url(store_factory), autocommit=True) as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s, %s)",
                         (schema.NODE_OWNER_NAMESPACE, schema.lock_key("alpha")))
        first, second = store_factory.open(node="alpha"), store_factory.open(node="alpha")
        assert [True, False] == [first.take_ownership(), second.take_ownership()]
        assert "alpha" == getattr(second.owner(), "node", None)


def test_expiry_is_the_servers_clock(store_factory: StoreFactory) -> None:
    """A node whose own clock is far off neither keeps a lease longer nor loses it sooner."""
    url = _url(store_factory)
    skewed = [PostgresStore(url, node="ahead", clock=lambda: time.time() + 86400),
              PostgresStore(url, node="behind", clock=lambda: time.time() - 86400)]
    try:
        ahead, behind = skewed
        assert None is ahead.lease(A, SHORT)
        assert "ahead" == behind.lease(A, LONG)
        time.sleep(PAST_SHORT)
        assert None is behind.lease(A, SHORT)
        assert "behind" == ahead.lease(A, LONG)
    finally:
        for store in skewed:
            store.close()


def _make_v1_store(url: str) -> None:
    """The schema the first PostgreSQL runwatchd made, with a row and its owner row."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(schema.VERSION_TABLE)
        for statement in schema.MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO files (path, state, updated_at) VALUES (%s, 'uploading', 1)",
                      (A,))
        conn.execute("INSERT INTO owners (id, pid, node, since, backend_pid) "
                     "VALUES (1, 1, 'old', 1, 1)")


def test_a_v1_store_is_migrated_in_place(store_factory: StoreFactory) -> None:
    """A store made by the first PostgreSQL runwatchd (schema v1, its owner row included) opens:
    rows kept, version 2 recorded, ownership per node and leases work."""
    url = _url(store_factory)
    _make_v1_store(url)
    store = store_factory.open(node="alpha")
    assert S.UPLOADING == stored(store, A).state
    with psycopg.connect(url, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert [1, 2] == versions
    assert store.take_ownership() is True
    assert [A] == [r.path for r in store.take_orphans({S.UPLOADING}, LONG)]
    store.put(record("/hot/new.jpg"))
    assert "alpha" == store_factory.open().lease(A, LONG)


def test_a_view_reads_a_v1_store_without_migrating_it(store_factory: StoreFactory) -> None:
    """status on a store no daemon of this version opened yet: its rows, no owner, no holders,
    and still v1; once a store migrates it, the same view sees the holders."""
    url = _url(store_factory)
    _make_v1_store(url)
    view = store_factory.view()
    assert ({"uploading": 1}, None, []) == (view.counts(), view.owner(), view.holders())
    with psycopg.connect(url, autocommit=True) as conn:
        assert (1,) == conn.execute("SELECT max(version) FROM schema_version").fetchone()
    store = store_factory.open(node="alpha")
    store.heartbeat(LONG)
    assert [store.holder] == [h.holder for h in view.holders()]


def test_holders_are_forgotten_an_hour_after_their_last_beat(
        store_factory: StoreFactory) -> None:
    """A holder whose last beat is over an hour old is no longer listed, and the next beat of
    any holder deletes its row, and every lease that ended over an hour ago."""
    gone, alive = store_factory.open(node="gone"), store_factory.open(node="alive")
    gone.heartbeat(LONG)
    alive.heartbeat(LONG)
    with psycopg.connect(_url(store_factory), autocommit=True) as conn:
        conn.execute("UPDATE holders SET heartbeat_at = heartbeat_at - 3601 WHERE holder = %s",
                     (gone.holder,))
        gone.lease(A, -3601.0)  # a lease that ended over an hour ago (a dead holder's)
        alive.lease("/hot/mine.jpg", LONG)
        assert ["alive"] == [h.node for h in store_factory.view().holders()]
        alive.heartbeat(LONG)
        rows = conn.execute("SELECT node FROM holders").fetchall()
        leased = conn.execute("SELECT path FROM leases").fetchall()
    assert ([("alive",)], [("/hot/mine.jpg",)]) == (rows, leased)


def _as_if_beaten_before_the_server_started(url: str, holder: str, lease: float) -> None:
    """Make `holder`'s last beat predate the server's start (as when PostgreSQL restarted)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE holders SET heartbeat_at = extract(epoch FROM pg_postmaster_start_time()) - 1,"
            " alive_until = extract(epoch FROM pg_postmaster_start_time()) - 1 + %s "
            "WHERE holder = %s", (lease, holder))


def test_a_server_restart_proves_no_holder_dead(store_factory: StoreFactory) -> None:
    """Across a server restart neither a missing lock nor a lease that ran out meanwhile makes
    a holder dead: its leases stay its own for one lease time from the server's start, so the
    first node back does not take the others' work in progress (30 s at least)."""
    first, second = store_factory.open(node="alpha"), store_factory.open(node="beta")
    first.heartbeat(SHORT)
    first.lease(A, SHORT)
    second.put(record(A, S.UPLOADING))
    first.close()  # its lock goes, as a restart drops it
    time.sleep(PAST_SHORT)  # and its lease runs out, as during the outage
    _as_if_beaten_before_the_server_started(_url(store_factory), first.holder, 1e6)
    assert "alpha" == second.lease(A, LONG)
    assert [] == second.take_orphans({S.UPLOADING}, LONG)
    # A holder that beat since the start and lost its lock is dead again, at once.
    with psycopg.connect(_url(store_factory), autocommit=True) as conn:
        conn.execute("UPDATE holders SET heartbeat_at = extract(epoch FROM clock_timestamp()) "
                     "WHERE holder = %s", (first.holder,))
    assert [A] == [r.path for r in second.take_orphans({S.UPLOADING}, LONG)]
