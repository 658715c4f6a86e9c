"""Tests for runwatchd.daemon.scheduler: the ready queue, in-flight and dirty sets, the limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from runwatchd.daemon.scheduler import WORKERS_PER_TRANSFER, Scheduler, Settled
from runwatchd.lifecycle.processor import Job

FOLDER: Any = None  # the scheduler never looks at the folder; admit() does


def item(name: str) -> Settled:
    return Settled(Path("/hot") / name, FOLDER)


class Rig:
    """A Scheduler whose work() blocks until released; records what it did."""

    def __init__(self, transfers: int = 1) -> None:
        self.release = threading.Event()
        self.started: list[Path] = []
        self.finished: list[tuple[Path, bool]] = []  # (path, dirty)
        self.admitted: list[Path] = []
        self.refuse: set[Path] = set()
        self.paused = False
        self.in_work = threading.Semaphore(0)
        self.requeue: Settled | None = None
        self.raise_in_work = False
        self.after_finish = threading.Event()  # set: work() waits after finish() for this
        self.hold_after_finish = False
        self.clock = [100.0]
        self.scheduler = Scheduler(transfers=transfers, admit=self.admit, work=self.work,
                                   paused=lambda: self.paused, clock=lambda: self.clock[0])

    def admit(self, it: Settled) -> Job | None:
        self.admitted.append(it.path)
        return None if it.path in self.refuse else Job(it.path, Path("/hot"), None)

    def work(self, job: Job, it: Settled) -> None:
        self.started.append(job.path)
        self.in_work.release()
        assert self.release.wait(5)
        if self.raise_in_work:
            raise RuntimeError("a bug after processing")
        dirty = self.scheduler.finish(job.path, requeue=self.requeue)
        self.finished.append((job.path, dirty))
        if self.hold_after_finish:
            assert self.after_finish.wait(5)

    def wait_started(self, n: int) -> None:
        for _ in range(n):
            assert self.in_work.acquire(timeout=5)


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.release.set()
    r.after_finish.set()
    r.scheduler.drain(5)
    r.scheduler.join()


def test_dispatch_keeps_at_most_two_files_in_flight_per_transfer(rig: Rig) -> None:
    """With concurrency 1, two files go to workers and the rest wait in order."""
    for name in "abcde":
        rig.scheduler.enqueue(item(name))
    assert WORKERS_PER_TRANSFER == rig.scheduler.dispatch()
    rig.wait_started(2)
    assert {Path("/hot/a"), Path("/hot/b")} == rig.scheduler.in_flight()
    assert 3 == rig.scheduler.queued_count()
    assert 0 == rig.scheduler.dispatch()


def test_in_flight_is_a_snapshot(rig: Rig) -> None:
    """in_flight() is a copy: a file finishing later does not change one taken before."""
    rig.scheduler.enqueue(item("a"))
    rig.scheduler.dispatch()
    rig.wait_started(1)
    before = rig.scheduler.in_flight()
    rig.release.set()
    assert wait_for(rig.scheduler.idle, 5)
    assert (frozenset({Path("/hot/a")}), frozenset()) == (before, rig.scheduler.in_flight())


def test_hold_queued_path_is_not_marked_dirty(rig: Rig) -> None:
    """An event for a queued file is absorbed: its signature is checked when a worker takes it."""
    rig.scheduler.enqueue(item("a"))
    assert True is rig.scheduler.hold(Path("/hot/a"))
    assert False is rig.scheduler.hold(Path("/hot/other"))
    rig.scheduler.dispatch()
    rig.release.set()
    assert wait_for(rig.scheduler.idle, 5)
    assert [(Path("/hot/a"), False)] == rig.finished


def test_hold_in_flight_path_makes_finish_report_dirty_once(rig: Rig) -> None:
    """An event for a file in flight marks it dirty; finish() reports it once, then forgets."""
    rig.scheduler.enqueue(item("a"))
    rig.scheduler.dispatch()
    rig.wait_started(1)
    assert True is rig.scheduler.hold(Path("/hot/a"))
    rig.release.set()
    assert wait_for(rig.scheduler.idle, 5)
    rig.scheduler.enqueue(item("a"))
    rig.scheduler.dispatch()
    assert wait_for(rig.scheduler.idle, 5)
    assert [(Path("/hot/a"), True), (Path("/hot/a"), False)] == rig.finished


def test_finish_with_requeue_puts_the_file_first(rig: Rig) -> None:
    """A paused file goes back to the front of the queue, ahead of files settled after it."""
    rig.scheduler.enqueue(item("a"))
    rig.scheduler.dispatch()
    rig.wait_started(1)
    rig.scheduler.enqueue(item("b"))
    rig.requeue = item("a")
    rig.paused = True
    rig.release.set()
    assert wait_for(lambda: rig.finished, 5)
    rig.requeue = None
    assert 0 == rig.scheduler.dispatch()  # paused: the requeued file waits
    rig.paused = False
    assert 2 == rig.scheduler.dispatch()
    assert [Path("/hot/a"), Path("/hot/a"), Path("/hot/b")] == rig.admitted


def test_paused_scheduler_dispatches_nothing(rig: Rig) -> None:
    """While paused, ready files stay queued."""
    rig.paused = True
    rig.scheduler.enqueue(item("a"))
    assert (0, 1) == (rig.scheduler.dispatch(), rig.scheduler.queued_count())


def test_admit_refusal_drops_the_file(rig: Rig) -> None:
    """A file admit() refuses (folder gone, changed while waiting) leaves the queue unworked."""
    rig.refuse.add(Path("/hot/a"))
    rig.scheduler.enqueue(item("a"))
    assert 0 == rig.scheduler.dispatch()
    assert ([Path("/hot/a")], 0, frozenset()) == (
        rig.admitted, rig.scheduler.queued_count(), rig.scheduler.in_flight())


def test_idle_waits_for_the_bookkeeping_after_finish(rig: Rig) -> None:
    """A job whose work goes on after finish() (booking its outcome) keeps the scheduler busy."""
    rig.hold_after_finish = True
    rig.scheduler.enqueue(item("a"))
    assert False is rig.scheduler.idle()
    rig.scheduler.dispatch()
    rig.wait_started(1)
    rig.release.set()
    assert wait_for(lambda: rig.finished)
    assert (frozenset(), False) == (rig.scheduler.in_flight(), rig.scheduler.idle())
    rig.after_finish.set()
    assert wait_for(rig.scheduler.idle)


def test_finish_records_progress_on_the_clock(rig: Rig) -> None:
    """finish() and note_progress() stamp last_progress with the injected clock."""
    assert 100.0 == rig.scheduler.last_progress()
    rig.clock[0] = 250.0
    rig.scheduler.note_progress()
    assert 250.0 == rig.scheduler.last_progress()


def test_work_that_raises_still_leaves_the_file_finished(rig: Rig,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A bug in work() costs that file only: it is not left in flight, the pool goes on."""
    rig.raise_in_work = True
    rig.scheduler.enqueue(item("a"))
    rig.scheduler.dispatch()
    rig.release.set()
    assert wait_for(rig.scheduler.idle)
    assert frozenset() == rig.scheduler.in_flight()
    assert "unexpected error after processing /hot/a" in caplog.text


def test_drain_counts_uploads_that_outlive_the_grace(rig: Rig) -> None:
    """drain() waits only the grace period and returns how many files are still in flight."""
    rig.scheduler.enqueue(item("a"))
    rig.scheduler.dispatch()
    rig.wait_started(1)
    assert 1 == rig.scheduler.drain(0.05)

