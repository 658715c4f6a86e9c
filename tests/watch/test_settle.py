"""The candidate table, driven by a fake clock and a fake filesystem."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from helpers import FakeClock

from runwatchd.watch.settle import RECHECK_INTERVAL, CandidateTable, Signature, signature_of


class FakeFS:
    """A stat map: `write` changes size, mtime and ctime like a real write; `stat` counts calls."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.files: dict[Path, list[int]] = {}  # path -> [size, mtime_ns, ctime_ns, ino]
        self.stats = 0
        self.errors: dict[Path, OSError] = {}
        self._ino = 100

    def write(self, path: Path, nbytes: int = 10) -> None:
        ns = int(self.clock.now * 1e9)
        if path not in self.files:
            self._ino += 1
            self.files[path] = [0, ns, ns, self._ino]
        f = self.files[path]
        f[0] += nbytes
        f[1] = f[2] = ns

    def remove(self, path: Path) -> None:
        del self.files[path]

    def stat(self, path: Path) -> os.stat_result:
        self.stats += 1
        if path in self.errors:
            raise self.errors[path]
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", str(path))
        size, mtime, ctime, ino = self.files[path]
        return os.stat_result((0o100644, ino, 1, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, mtime, mtime, ctime))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fs(clock: FakeClock) -> FakeFS:
    return FakeFS(clock)


@pytest.fixture
def table(clock: FakeClock, fs: FakeFS) -> CandidateTable:
    return CandidateTable(clock=clock, stat=fs.stat)


def run_until(table: CandidateTable, clock: FakeClock, end: float, step: float = 0.05) -> dict:
    """Call pop_ready every `step` seconds until `end`; returns path -> time it came out."""
    out = {}
    while clock.now < end:
        for path, _sig in table.pop_ready():
            out[path] = clock.now
        clock.advance(step)
    return out


A = Path("/hot/a.mov")
B = Path("/hot/b.jpg")


def test_signature_of_takes_size_times_and_inode(tmp_path: Path) -> None:
    """signature_of copies size, mtime_ns, ctime_ns and inode from a real stat."""
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    st = os.stat(p)
    assert Signature(3, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == signature_of(st)


def test_unchanged_file_is_ready_after_settle(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """A file nobody writes to comes out once, exactly settle seconds after it was touched."""
    fs.write(A)
    table.touch(A, 2.0)
    clock.advance(1.99)
    assert [] == table.pop_ready()
    clock.advance(0.01)
    ready = table.pop_ready()
    assert [A] == [p for p, _ in ready]
    assert signature_of(fs.stat(A)) == ready[0][1]
    assert 0 == len(table)
    assert [] == table.pop_ready()


def test_writer_pausing_less_than_settle_never_yields_half_file(
    table: CandidateTable, clock: FakeClock, fs: FakeFS
) -> None:
    """A writer that pauses 1.9 s between chunks (settle 2 s) is only ready after its last chunk."""
    start = clock.now
    fs.write(A)
    table.touch(A, 2.0)
    out: dict = {}
    for _ in range(10):
        out.update(run_until(table, clock, clock.now + 1.9))
        fs.write(A)  # no event at all: only the signature tells
    last_write = clock.now
    assert {} == out
    out = run_until(table, clock, clock.now + 10)
    assert [A] == list(out)
    assert last_write + 2.0 <= out[A] <= last_write + 4.1
    assert start < last_write


def test_close_write_never_shortens_below_settle(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """close_write right after the last write still waits a full settle time of no change."""
    fs.write(A)
    table.touch(A, 5.0)
    clock.advance(1.0)
    fs.write(A)
    table.touch(A, 5.0, closed=True)
    closed_at = clock.now
    out = run_until(table, clock, clock.now + 10)
    assert pytest.approx(closed_at + 5.0, abs=0.06) == out[A]


def test_close_of_untouched_file_waits_full_settle(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """A killed writer's close (no change since the first stat) does not make the file ready early."""
    fs.write(A)
    table.touch(A, 3.0)
    clock.advance(0.5)
    table.touch(A, 3.0, closed=True)
    t0 = clock.now - 0.5
    out = run_until(table, clock, clock.now + 5)
    assert t0 + 3.0 == pytest.approx(out[A], abs=0.06)


def test_close_write_tightens_the_wait(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """After close_write the file is ready settle seconds after the close, not up to 2x settle later."""
    fs.write(A)
    table.touch(A, 4.0)
    clock.advance(3.0)
    fs.write(A)
    table.touch(A, 4.0, closed=True)
    closed_at = clock.now
    out = run_until(table, clock, clock.now + 10)
    assert closed_at + 4.0 == pytest.approx(out[A], abs=0.06)


def test_close_write_rechecks_without_the_throttle(table: CandidateTable, clock: FakeClock,
                                                    fs: FakeFS) -> None:
    """A close right after a write is stat'ed at once: ready settle seconds after the close."""
    fs.write(A)
    table.touch(A, 2.0)
    clock.advance(0.05)  # well inside RECHECK_INTERVAL of the first stat
    fs.write(A)
    table.touch(A, 2.0, closed=True)
    closed_at = clock.now
    out = run_until(table, clock, clock.now + 5)
    assert closed_at + 2.0 == pytest.approx(out[A], abs=0.06)  # throttled: +0.25 s


def test_touch_of_known_path_keeps_its_clock(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """Repeated events on an unchanged file (a scan, a chmod) do not push readiness back."""
    fs.write(A)
    table.touch(A, 2.0)
    for _ in range(19):
        clock.advance(0.1)
        table.touch(A, 2.0)
        table.pop_ready()
    clock.advance(0.1)
    assert [A] == [p for p, _ in table.pop_ready()]


def test_event_flood_is_throttled(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """Thousands of modify events on a file cost a few stats per second, not one per event."""
    fs.write(A)
    table.touch(A, 10.0)
    fs.stats = 0
    for _ in range(1000):
        clock.advance(0.001)
        fs.write(A)
        table.touch(A, 10.0)
        table.pop_ready()
    assert fs.stats <= 1.0 / RECHECK_INTERVAL + 1


def test_changed_signature_resets_the_clock(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """A change in size, mtime, ctime or inode seen at a check restarts the settle time."""
    fs.write(A)
    table.touch(A, 2.0)
    clock.advance(2.0)
    fs.files[A][3] = 999  # replaced by another file of the same size and times
    assert [] == table.pop_ready()
    clock.advance(1.99)
    assert [] == table.pop_ready()
    clock.advance(0.01)
    assert [A] == [p for p, _ in table.pop_ready()]


def test_vanished_file_is_dropped(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """A file deleted while settling leaves the table without being returned."""
    fs.write(A)
    table.touch(A, 2.0)
    fs.remove(A)
    clock.advance(2.0)
    assert [] == table.pop_ready()
    assert A not in table
    assert None is table.next_due()


def test_touch_of_missing_file_is_ignored(table: CandidateTable, fs: FakeFS) -> None:
    """An event for a file that is already gone adds nothing."""
    table.touch(A, 2.0)
    assert 0 == len(table)


def test_stat_error_drops_with_warning(
    table: CandidateTable, clock: FakeClock, fs: FakeFS, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected stat error drops the candidate (the next scan finds it again) and says so."""
    fs.write(A)
    table.touch(A, 1.0)
    fs.errors[A] = PermissionError(13, "Permission denied")
    clock.advance(1.0)
    assert [] == table.pop_ready()
    assert 0 == len(table)
    assert "Permission denied" in caplog.text


def test_discard_removes_candidate(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """discard forgets a path; its scheduled check is skipped."""
    fs.write(A)
    table.touch(A, 2.0)
    table.discard(A)
    table.discard(B)  # unknown: no error
    clock.advance(3.0)
    assert [] == table.pop_ready()
    assert None is table.next_due()


def test_many_candidates_with_different_settle_times(
    table: CandidateTable, clock: FakeClock, fs: FakeFS
) -> None:
    """Each file comes out after its own settle time, in order of readiness."""
    t0 = clock.now
    settle = {Path(f"/hot/f{i}.jpg"): float(s) for i, s in enumerate([5, 1, 3, 2, 4])}
    for path, s in settle.items():
        fs.write(path)
        table.touch(path, s)
    out = run_until(table, clock, t0 + 6, step=0.5)
    assert {p: t0 + s for p, s in settle.items()} == out
    assert sorted(settle, key=settle.get) == sorted(out, key=out.get)


def test_next_due(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """next_due is None when empty, the time to the earliest check, and 0 when overdue."""
    assert None is table.next_due()
    fs.write(A)
    fs.write(B)
    table.touch(A, 5.0)
    table.touch(B, 2.0)
    assert 2.0 == table.next_due()
    clock.advance(3.0)
    assert 0.0 == table.next_due()
    table.pop_ready()
    assert 2.0 == table.next_due()


def test_next_due_skips_stale_entries(table: CandidateTable, clock: FakeClock, fs: FakeFS) -> None:
    """A discarded candidate does not make next_due report an early wake-up."""
    fs.write(A)
    fs.write(B)
    table.touch(A, 1.0)
    table.touch(B, 4.0)
    table.discard(A)
    assert 4.0 == table.next_due()


def test_len_and_contains(table: CandidateTable, fs: FakeFS) -> None:
    """len counts candidates; `in` accepts Path and str."""
    fs.write(A)
    table.touch(A, 1.0)
    assert 1 == len(table)
    assert A in table
    assert str(A) in table
    assert B not in table
    assert 42 not in table


def test_event_during_check_defers_readiness(clock: FakeClock, fs: FakeFS) -> None:
    """An event that arrives while the file is being stat'ed gets one more look before release."""
    table: CandidateTable

    def stat(path: Path) -> os.stat_result:
        result = fs.stat(path)
        if fs.stats == 2:  # the due check of A: an event arrives mid-stat
            table.touch(path, 2.0, closed=True)
        return result

    table = CandidateTable(clock=clock, stat=stat)
    fs.write(A)
    table.touch(A, 2.0)
    clock.advance(2.0)
    assert [] == table.pop_ready()
    assert A in table
    assert [A] == [p for p, _ in table.pop_ready()]
    assert 3 == fs.stats


def test_hundred_thousand_candidates(clock: FakeClock, tmp_path: Path) -> None:
    """100k candidates, with duplicate heap entries, are touched and popped in O(n log n)."""
    st = os.stat(tmp_path)  # one unchanging stat: this measures the table, not a fake filesystem
    table = CandidateTable(clock=clock, stat=lambda _path: st)
    paths = [Path(f"/hot/{i}.jpg") for i in range(100_000)]
    for i, p in enumerate(paths):
        table.touch(p, 1.0 + (i % 10) / 10)
    for p in paths[::10]:
        table.touch(p, 1.0)  # an early re-check: a second heap entry for the same path
    clock.advance(1.0)
    assert 10_000 == len(table.pop_ready())
    clock.advance(1.0)
    assert 90_000 == len(table.pop_ready())
    assert 0 == len(table)
    assert None is table.next_due()


def test_concurrent_touch_and_pop(clock: FakeClock, fs: FakeFS) -> None:
    """Touching from several threads while popping loses and duplicates nothing."""
    table = CandidateTable(clock=clock, stat=fs.stat)
    paths = [Path(f"/hot/{i}.jpg") for i in range(4000)]
    for p in paths:
        fs.write(p)
    clock.advance(10.0)  # every write is old: readiness depends only on the settle time

    def feed(chunk: list[Path]) -> None:
        for p in chunk:
            table.touch(p, 0.0)

    threads = [threading.Thread(target=feed, args=(paths[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    seen: list[Path] = []
    while any(t.is_alive() for t in threads):
        seen.extend(p for p, _ in table.pop_ready())
    for t in threads:
        t.join()
    seen.extend(p for p, _ in table.pop_ready())
    assert sorted(paths) == sorted(seen)
