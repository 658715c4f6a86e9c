"""SQLite leases: a holder of this host whose process is gone is dead at once; another host's
holder lives until its lease expires (its pid cannot be checked from here)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import FakeClock

from runwatchd.lifecycle.states import FileState
from runwatchd.store.base import new_holder
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore
from runwatchd.store.sqlite_leases import holder_dead


def ended_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def forge_lease(journal: Path, path: str, holder: str, expires_at: float) -> None:
    db = sqlite3.connect(str(journal))
    with db:
        db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (path, holder, expires_at))
    db.close()


def test_a_lease_of_an_ended_process_of_this_host_is_taken_at_once(tmp_path: Path) -> None:
    """A killed process's lease is not waited out: its pid is gone from this host."""
    journal = tmp_path / "j.sqlite3"
    store = SqliteStore(journal, clock=FakeClock())
    try:
        node = store.holder.rsplit(":", 2)[0]
        forge_lease(journal, "/hot/a.png", f"{node}:{ended_pid()}:abcdef", 9e12)
        assert None is store.lease("/hot/a.png", 30)
    finally:
        store.close()


def test_another_hosts_lease_lasts_until_it_expires(tmp_path: Path) -> None:
    """A lease of a holder on another host is believed until its expiry, then taken."""
    journal = tmp_path / "j.sqlite3"
    clock = FakeClock(1000.0)
    store = SqliteStore(journal, clock=clock)
    try:
        forge_lease(journal, "/hot/a.png", "render-07:4242:abcdef", 1030.0)
        assert "render-07" == store.lease("/hot/a.png", 30)
        clock.advance(30)
        assert None is store.lease("/hot/a.png", 30)
    finally:
        store.close()


def test_orphans_include_rows_of_a_dead_holder_and_of_none(tmp_path: Path) -> None:
    """Rows in progress with no lease or a dead holder's are orphans; a live holder's are not,
    and rows at rest never are."""
    journal = tmp_path / "j.sqlite3"
    store = SqliteStore(journal, clock=FakeClock())
    try:
        for name, state in (("free", FileState.UPLOADING), ("dead", FileState.SUBMITTING),
                            ("live", FileState.RUNNING), ("done", FileState.UPLOADED)):
            store.put(FileRecord(path=f"/hot/{name}.png", state=state))
        node = store.holder.rsplit(":", 2)[0]
        forge_lease(journal, "/hot/dead.png", f"{node}:{ended_pid()}:abcdef", 9e12)
        forge_lease(journal, "/hot/live.png", "render-07:4242:abcdef", 9e12)
        taken = store.take_orphans({FileState.UPLOADING, FileState.SUBMITTING,
                                    FileState.RUNNING}, 30)
        assert ["/hot/dead.png", "/hot/free.png"] == sorted(r.path for r in taken)
        assert [] == store.take_orphans({FileState.UPLOADING, FileState.SUBMITTING}, 30)
    finally:
        store.close()


def test_holder_ids_are_unique_and_hostile_ones_are_not_dead() -> None:
    """Two holders of one process differ; a malformed holder id is never proven dead."""
    assert new_holder("n1") != new_holder("n1")
    assert not holder_dead("no-colons")
    assert not holder_dead(f"{new_holder('x').rsplit(':', 2)[0]}:notapid:tag")


def test_holders_lists_beats_and_marks_the_silent_dead(tmp_path: Path) -> None:
    """holders() shows each beat's in-flight count and version; a holder whose beat is older
    than its lease time is not alive; leave() forgets it."""
    journal = tmp_path / "j.sqlite3"
    clock = FakeClock(1000.0)
    a, b = SqliteStore(journal, clock=clock), SqliteStore(journal, clock=clock)
    try:
        a.heartbeat(30, in_flight=3, version="9.9")
        clock.advance(20)
        b.heartbeat(30, in_flight=1, version="9.9")
        assert [(b.holder, 1, True), (a.holder, 3, True)] == [
            (h.holder, h.in_flight, h.alive) for h in a.holders()]
        clock.advance(15)
        assert [True, False] == [h.alive for h in a.holders()]
        b.leave()
        assert [a.holder] == [h.holder for h in a.holders()]
    finally:
        a.close()
        b.close()
