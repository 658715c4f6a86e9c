"""SqliteStore passes the Store contract; and what only SQLite has: the journal file, its URL,
old journals' migration, the WAL reader and the owner's lock file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import ClaimContract, RowContract, StoreFactory, record, stored
from contract_leases import HolderContract, LeaseContract, OrphanContract
from contract_owner import OwnershipContract, TransitionContract, ViewContract

from runwatchd.errors import ConfigError
from runwatchd.store import open_store, open_view
from runwatchd.store.sqlite import SqliteStore


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[StoreFactory]:
    """Handles on a fresh SQLite store in tmp_path/state, the default location."""
    factory = StoreFactory(tmp_path / "state")
    yield factory
    factory.close()


class TestSqliteRows(RowContract):
    """The row contract on SQLite."""


class TestSqliteClaims(ClaimContract):
    """The at-most-once contract on SQLite."""


class TestSqliteOwnership(OwnershipContract):
    """The ownership contract on SQLite (flock beside the journal)."""


class TestSqliteTransitions(TransitionContract):
    """The transition check on SQLite."""


class TestSqliteView(ViewContract):
    """The read-only view on SQLite."""


class TestSqliteLeases(LeaseContract):
    """The lease contract on SQLite (a holder's pid gone on this host proves it dead)."""


class TestSqliteOrphans(OrphanContract):
    """take_orphans on SQLite."""


class TestSqliteHolders(HolderContract):
    """holders() on SQLite."""


def test_the_journal_is_where_it_always_was(tmp_path: Path) -> None:
    """open_store(state_dir) keeps its rows in state_dir/journal.sqlite3 (no migration)."""
    store = open_store(tmp_path / "state")
    store.put(record())
    store.close()
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite3")
    try:
        assert [("/hot/shot.jpg", "to_submit")] == db.execute(
            "SELECT path, state FROM files").fetchall()
    finally:
        db.close()


def test_a_sqlite_url_names_the_file(tmp_path: Path) -> None:
    """sqlite:///ABS/PATH puts the journal there instead of in the state directory."""
    store = open_store(tmp_path / "state", f"sqlite://{tmp_path}/elsewhere/j.db")
    store.put(record())
    store.close()
    assert (tmp_path / "elsewhere" / "j.db").exists()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("url", ["mysql://runwatchd:s3cret@db/runwatchd", "journal.db",
                                 "sqlite://host/x.db", "sqlite:relative.db", "sqlite:///"])
def test_an_unusable_url_is_a_config_error(tmp_path: Path, url: str) -> None:
    """An unknown scheme or a sqlite URL without an absolute path: ConfigError, no password."""
    with pytest.raises(ConfigError) as caught:
        open_store(tmp_path, url)
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith("store.url: ")


def test_status_view_creates_nothing(tmp_path: Path) -> None:
    """open_view on a state directory the daemon never used creates neither it nor a journal."""
    open_view(tmp_path / "state").close()
    assert not (tmp_path / "state").exists()


def test_old_journal_gains_new_columns(tmp_path: Path) -> None:
    """A journal from before rule_name/output_dir opens, keeps its rows and takes the new ones."""
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, state TEXT NOT NULL, size INTEGER, "
               "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, sha256 TEXT, runway_uri TEXT, "
               "uploaded_at REAL, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, "
               "next_attempt REAL, rule_fp TEXT, endpoint TEXT, task_id TEXT, task_status TEXT, "
               "outputs TEXT, failure TEXT, failure_code TEXT, updated_at REAL NOT NULL)")
    db.execute("INSERT INTO files (path, state, updated_at) VALUES ('/old.jpg', 'uploaded', 1)")
    db.commit()
    db.close()
    store = open_store(tmp_path)
    try:
        assert "uploaded" == stored(store, "/old.jpg").state
        store.put(record())
        assert "stills" == stored(store).rule_name
    finally:
        store.close()


def test_the_view_reads_beside_an_open_write(store_factory: StoreFactory) -> None:
    """WAL: beside an open write transaction the view reads the last commit, without waiting."""
    store_factory.open().put(record())
    writer = sqlite3.connect(store_factory.state_dir / "journal.sqlite3", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE files SET state = 'running'")
        view = store_factory.view()
        assert {"to_submit": 1} == view.counts()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_owner_lock_file_of_a_dead_process_names_nobody(store_factory: StoreFactory) -> None:
    """The lock file holds pid, node, since; naming a pid that is gone (SIGKILL) it names nobody."""
    store = store_factory.open()
    store.take_ownership()
    lock = store_factory.state_dir / "journal.sqlite3.lock"
    held = json.loads(lock.read_text())
    assert ["node", "pid", "since"] == sorted(held)
    store.close()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock.write_text(json.dumps(dict(held, pid=int(gone.stdout))))
    assert None is store_factory.view().owner()


def test_check_intact_sees_the_journal_deleted_or_replaced(tmp_path: Path) -> None:
    """check_intact: None while the path is the opened file, else a line naming what happened."""
    path = tmp_path / "journal.sqlite3"
    store = SqliteStore(path)
    try:
        assert None is store.check_intact()
        other = tmp_path / "other"
        other.write_bytes(b"")
        os.replace(other, path)
        assert f"the journal {path} was replaced by another file" == store.check_intact()
        path.unlink()
        assert f"the journal {path} was deleted" == store.check_intact()
    finally:
        store.close()


def test_a_path_that_is_not_utf8_is_stored_and_read_back(tmp_path: Path) -> None:
    """A str with surrogates (os.fsdecode of non-UTF-8 bytes) is a BLOB key: same str back."""
    path = str(tmp_path / os.fsdecode(b"caf\xe9.png"))
    out = str(tmp_path / os.fsdecode(b"out\xff"))
    store = SqliteStore(tmp_path / "journal.sqlite3")
    try:
        store.put(record(path, "uploaded", output_dir=out, error=f"oops {path}"))
        got = store.get(path)
        assert (path, out) == (got.path if got else None, got.output_dir if got else None)
        assert [path] == list(store.signatures())
        assert {out} == store.output_dirs()
        assert [path] == [r.path for r in store.in_state("uploaded")]
        store.delete(path)
        assert None is store.get(path)
    finally:
        store.close()
