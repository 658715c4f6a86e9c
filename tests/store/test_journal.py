"""Tests for runwatchd.store.sqlite: rows, the at-most-once claim, migration and the owner lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore, open_readonly

SHA = "a" * 64


@pytest.fixture
def journal(tmp_path: Path):
    j = SqliteStore(tmp_path / "state" / "journal.sqlite3")
    yield j
    j.close()


def intent(path: str = "/hot/shot.jpg", sha: str = SHA) -> FileRecord:
    return FileRecord(path=path, state="to_submit", size=600, mtime_ns=1, inode=2, sha256=sha,
                      runway_uri="runway://upload/x", uploaded_at=0.0, rule_fp="f",
                      rule_name="stills", output_dir="/hot/renders")


def test_signature_of_one_row_matches_signatures(journal: SqliteStore) -> None:
    """signature(path) answers what signatures() has for that path, and None for an unknown."""
    journal.put(intent())
    assert journal.signatures()["/hot/shot.jpg"] == journal.signature("/hot/shot.jpg")
    assert ("to_submit", 600, 1, 2) == journal.signature("/hot/shot.jpg")
    assert None is journal.signature("/hot/other.jpg")


def test_put_get_roundtrip_keeps_every_field(journal: SqliteStore) -> None:
    """A row comes back as it was written, outputs list and rule name included."""
    record = intent()
    record.state, record.outputs, record.task_id = "succeeded", ["renders/shot.mp4"], "t1"
    journal.put(record)
    got = journal.get("/hot/shot.jpg")
    assert got is not None
    assert (["renders/shot.mp4"], "t1", "stills", "/hot/renders") == (
        got.outputs, got.task_id, got.rule_name, got.output_dir)


def test_claim_records_the_intent(journal: SqliteStore) -> None:
    """claim_submit on a fresh row writes state "submitting" and returns None."""
    assert journal.claim_submit(intent()) is None
    assert "submitting" == journal.get("/hot/shot.jpg").state


@pytest.mark.parametrize("state", ["submitting", "running", "succeeded", "task_failed",
                                   "attention"])
def test_claim_refuses_when_the_content_has_a_task(journal: SqliteStore, state: str) -> None:
    """Same path and content already holding (or maybe holding) a task: the claim is refused."""
    held = intent()
    held.state, held.task_id = state, "t1"
    journal.put(held)
    holder = journal.claim_submit(intent())
    assert holder is not None
    assert (state, "t1") == (holder.state, holder.task_id)
    assert state == journal.get("/hot/shot.jpg").state


@pytest.mark.parametrize("state", ["retry", "awaiting_credits", "to_submit", "failed"])
def test_claim_allows_rows_without_a_task(journal: SqliteStore, state: str) -> None:
    """retry (on purpose), awaiting credits, to_submit and failed hold no task: claim goes on."""
    row = intent()
    row.state = state
    journal.put(row)
    assert journal.claim_submit(intent()) is None


def test_claim_allows_new_content_of_the_same_path(journal: SqliteStore) -> None:
    """A file replaced by new content may be generated again: the key is the content."""
    held = intent()
    held.state = "succeeded"
    journal.put(held)
    assert journal.claim_submit(intent(sha="b" * 64)) is None


def test_only_one_of_many_threads_claims(journal: SqliteStore) -> None:
    """Eight threads claiming the same content at once: exactly one wins."""
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        wins.append(journal.claim_submit(intent()) is None)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 == sum(wins)


def test_claim_is_atomic_across_processes(tmp_path: Path) -> None:
    """A second process (as `runwatchd retry` beside the daemon) cannot claim what one holds."""
    db = tmp_path / "journal.sqlite3"
    first = SqliteStore(db)
    try:
        assert first.claim_submit(intent()) is None
        code = (
            "import sys; from runwatchd.store.sqlite import SqliteStore; from runwatchd.store.record import FileRecord\n"
            f"j = SqliteStore(__import__('pathlib').Path({str(db)!r}))\n"
            f"r = FileRecord(path='/hot/shot.jpg', state='to_submit', sha256={SHA!r})\n"
            "sys.exit(0 if j.claim_submit(r) is not None else 3)\n"
        )
        assert 0 == subprocess.run([sys.executable, "-c", code], timeout=30).returncode
    finally:
        first.close()


def test_old_journal_gains_new_columns(tmp_path: Path) -> None:
    """A journal from before rule_name/output_dir opens, keeps its rows and takes the new ones."""
    db_path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, state TEXT NOT NULL, size INTEGER, "
               "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, sha256 TEXT, runway_uri TEXT, "
               "uploaded_at REAL, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, "
               "next_attempt REAL, rule_fp TEXT, endpoint TEXT, task_id TEXT, task_status TEXT, "
               "outputs TEXT, failure TEXT, failure_code TEXT, updated_at REAL NOT NULL)")
    db.execute("INSERT INTO files (path, state, updated_at) VALUES ('/old.jpg', 'uploaded', 1)")
    db.commit()
    db.close()
    j = SqliteStore(db_path)
    try:
        assert "uploaded" == j.get("/old.jpg").state
        j.put(intent())
        assert "stills" == j.get("/hot/shot.jpg").rule_name
    finally:
        j.close()


def test_owner_lock_is_exclusive_and_released_on_close(tmp_path: Path) -> None:
    """One journal owner at a time; closing (or dying) releases the lock for the next one."""
    db = tmp_path / "journal.sqlite3"
    first, second = SqliteStore(db), SqliteStore(db)
    try:
        assert first.take_ownership() is True
        assert second.take_ownership() is False
        first.close()
        assert second.take_ownership() is True
    finally:
        second.close()


def test_counts_and_readonly_reader(journal: SqliteStore) -> None:
    """counts() groups by state; a read-only connection sees committed rows."""
    journal.put(intent("/a.jpg"))
    journal.put(FileRecord(path="/b.jpg", state="attention", error="needs attention: x"))
    assert {"to_submit": 1, "attention": 1} == journal.counts()
    db = open_readonly(journal.path)
    try:
        assert [("/b.jpg",)] == db.execute(
            "SELECT path FROM files WHERE state = 'attention'").fetchall()
    finally:
        db.close()


def test_update_if_changes_only_the_expected_state(journal: SqliteStore) -> None:
    """update_if changes a row still in the expected state, and leaves one that moved on."""
    row = intent()
    row.state = "attention"
    journal.put(row)
    assert journal.update_if("/hot/shot.jpg", "attention", state="retry") is True
    assert journal.update_if("/hot/shot.jpg", "attention", state="to_submit") is False
    assert journal.update_if("/hot/none.jpg", "attention", state="retry") is False
    assert "retry" == journal.get("/hot/shot.jpg").state


def test_output_dirs_lists_every_known_output_folder(journal: SqliteStore) -> None:
    """output_dirs() gives the distinct folders outputs went to (old rules' included)."""
    journal.put(intent("/a.jpg"))
    journal.put(intent("/b.jpg"))
    journal.put(FileRecord(path="/c.jpg", state="uploaded"))
    assert {"/hot/renders"} == journal.output_dirs()
