"""Tests for runwatchd.lifecycle.processor on the emulator: one generation per file content,
whatever happens to the file, its sidecar or the journal."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from pipeline_helpers import Rig, make_rule, task_part

from runwatchd.cli.demo import make_png
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.states import Ending, FailureReason, Outcome
from runwatchd.store.sqlite import SqliteStore


def test_uncertain_submit_needs_attention_and_is_not_resubmitted(rig: Rig) -> None:
    """The connection drops after the POST created a task: NEEDS_ATTENTION, no second POST."""
    shot = rig.still()
    rig.emu.set_faults(drop_after_rate=1.0, scope=["tasks"])
    assert Ending(Outcome.ATTENTION, FailureReason.SUBMIT_UNCERTAIN) == rig.processor().process(
        rig.job(shot, make_rule()))
    rig.emu.set_faults(drop_after_rate=0.0)
    assert Ending(Outcome.SKIPPED) == rig.processor().process(rig.job(shot, make_rule()))
    task = task_part(shot)
    assert "NEEDS_ATTENTION" == task["status"]
    assert "runwatchd retry" in task["failure"]
    assert ("attention", 1) == (rig.journal.get(shot).state, rig.stats()["tasks_created"])


def test_retry_state_submits_exactly_once_more(rig: Rig) -> None:
    """After `retry` marks the row, the next look submits once, and only once."""
    shot = rig.still()
    rig.emu.set_faults(drop_after_rate=1.0, scope=["tasks"])
    assert Outcome.ATTENTION == rig.processor().process(rig.job(shot, make_rule())).outcome
    rig.emu.set_faults(drop_after_rate=0.0)
    rig.journal.update(shot, state="retry", task_id=None, error=None)
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert Outcome.SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert 2 == rig.stats()["tasks_created"]
    assert "PENDING" == task_part(shot)["status"]


def test_touched_file_with_the_same_content_is_not_resubmitted(rig: Rig) -> None:
    """touch after the generation: no upload, no task; the sidecar follows the new mtime."""
    shot = rig.still()
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    os.utime(shot, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert Outcome.SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    data = sidecar.read_sidecar(shot)
    assert sidecar.sidecar_matches(data, shot.stat(), shot.name)
    assert "task" in data
    assert (1, 1) == (rig.stats()["uploads_completed"], rig.stats()["tasks_created"])


def test_new_content_is_generated_again(rig: Rig) -> None:
    """A file replaced by different content is a new generation."""
    shot = rig.still()
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    make_png(shot, seed=99)
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert 2 == rig.stats()["tasks_created"]


def test_deleted_sidecar_is_written_again_from_the_journal(rig: Rig) -> None:
    """The user deletes a sidecar of a submitted file: it comes back with the task, no new POST."""
    shot = rig.still()
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    task_id = rig.journal.get(shot).task_id
    sidecar.sidecar_path(shot).unlink()
    assert Outcome.SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert task_id == task_part(shot)["id"]
    assert 1 == rig.stats()["tasks_created"]


def test_lost_journal_believes_the_sidecar(rig: Rig, tmp_path: Path) -> None:
    """A new state directory: a matching sidecar with a task is taken over, not resubmitted."""
    shot = rig.still()
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    fresh = SqliteStore(tmp_path / "other-state" / "journal.sqlite3")
    try:
        assert Outcome.SKIPPED == rig.processor(fresh).process(rig.job(shot, make_rule())).outcome
        assert "running" == fresh.get(shot).state
    finally:
        fresh.close()
    assert 1 == rig.stats()["tasks_created"]
    assert 2 == len(rig.followed)  # followed again from the new journal


def test_two_processes_never_both_submit(rig: Rig) -> None:
    """Two processors on their own journal connections race for one file: one task."""
    shot = rig.still()
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []

    def run() -> None:
        journal = SqliteStore(rig.state / "journal.sqlite3")
        try:
            barrier.wait()
            outcomes.append(rig.processor(journal).process(rig.job(shot, make_rule())).outcome)
        finally:
            journal.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 1 == rig.stats()["tasks_created"]
    assert Outcome.SUBMITTED in outcomes
