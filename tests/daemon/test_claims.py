"""WorkClaims: leases around a worker's file, the heartbeat, giving up idle leases, orphans."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FakeClock

from runwatchd.daemon.claims import WorkClaims
from runwatchd.errors import StoreUnavailable
from runwatchd.lifecycle.states import FileState
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore


@pytest.fixture
def stores(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two handles on one journal: two processes as far as leases go (two holders)."""
    clock = FakeClock()
    a = SqliteStore(tmp_path / "j.sqlite3", clock=clock)
    b = SqliteStore(tmp_path / "j.sqlite3", clock=clock)
    yield a, b, clock
    a.close()
    b.close()


def test_a_claim_held_by_another_process_names_its_node(stores) -> None:  # type: ignore[no-untyped-def]
    """The second claimant of a file is told who has it; the first keeps it."""
    a, b, _ = stores
    first = WorkClaims(a, seconds=30, busy=set)
    second = WorkClaims(b, seconds=30, busy=set)
    assert None is first.claim(Path("/hot/a.png"))
    assert a.holder.rsplit(":", 2)[0] == second.claim(Path("/hot/a.png"))


def test_done_releases_unless_the_task_is_followed_here(stores) -> None:  # type: ignore[no-untyped-def]
    """A finished file's lease goes at once; one whose task is followed here stays ours."""
    a, b, _ = stores
    mine = WorkClaims(a, seconds=30, busy=set)
    mine.claim(Path("/hot/a.png"))
    mine.claim(Path("/hot/b.png"))
    mine.done(Path("/hot/a.png"), keep=False)
    mine.done(Path("/hot/b.png"), keep=True)
    assert None is b.lease("/hot/a.png", 30)
    assert None is not b.lease("/hot/b.png", 30)


def test_a_beat_keeps_leases_alive_and_gives_idle_ones_up(stores) -> None:  # type: ignore[no-untyped-def]
    """Beats every third of the lease time extend busy leases; an idle one is given up."""
    a, b, clock = stores
    busy = {Path("/hot/busy.png")}
    mine = WorkClaims(a, seconds=30, busy=lambda: set(busy), clock=clock)
    mine.claim(Path("/hot/busy.png"))
    mine.claim(Path("/hot/idle.png"))
    for _ in range(5):  # 50 s: past the first lease's expiry, beating every 10 s
        mine.tick(in_flight=1)
        clock.now += 10
    assert None is not b.lease("/hot/busy.png", 30)
    assert None is b.lease("/hot/idle.png", 30)
    assert [1] == [h.in_flight for h in a.holders() if h.holder == a.holder]


def test_orphans_of_a_silent_holder_are_taken_over_once(stores) -> None:  # type: ignore[no-untyped-def]
    """A holder that stopped beating loses its rows in progress to the next beat of another
    (taken again at later beats while nothing here works on them: a taken-over upload is queued,
    and its worker claims it anew)."""
    a, b, clock = stores
    a.put(FileRecord(path="/hot/a.png", state=FileState.UPLOADING))
    a.put(FileRecord(path="/hot/done.png", state=FileState.UPLOADED))
    WorkClaims(a, seconds=30, busy=set).claim(Path("/hot/a.png"))
    taken: list[list[str]] = []
    other = WorkClaims(b, seconds=30, busy=set, clock=clock,
                       take_over=lambda rows: taken.append([r.path for r in rows]))
    other.tick(0)
    assert [] == taken  # a's lease is live
    clock.now += 31
    other.tick(0)  # within a third of the lease time: no beat yet
    clock.now += 10
    other.tick(0)
    assert [["/hot/a.png"]] == taken[:1]


def test_a_store_outage_skips_the_beat_without_raising(tmp_path: Path) -> None:
    """The database gone for a moment: the beat is skipped, the main loop goes on."""

    class Gone(SqliteStore):
        def heartbeat(self, seconds: float, *, in_flight: int = 0, version: str = "") -> None:
            raise StoreUnavailable("store unavailable: gone")

    store = Gone(tmp_path / "j.sqlite3")
    try:
        WorkClaims(store, seconds=30, busy=set, take_over=lambda rows: None).tick(0)
    finally:
        store.close()
