"""Tests for the order of writes drawn in runwatchd.lifecycle.processor: a scan-mode Daemon
"crashes" at one point and a fresh Daemon starts on the same state directory.

A crash is an exception, raised by the client or the store handed to the Daemon, that nothing in
runwatchd turns into a state change, so the journal and the files are left as a process dying at
that point leaves them (test_generation.py also kills a real one).

Every write of processor.py's docstring table, in its order, and the points (CRASH_POINTS) at it:

    journal "uploading"        before the journal's uploading; after it, before upload
    upload                     after upload, before sidecar (leaves the sidecar's temp)
    sidecar                    after sidecar, before journal
    journal "to_submit"        after journal, before intent
    "submitting" claim         after intent, before POST
    POST                       after POST, before task id
    journal "running" + id     after the answer, at the journal's running; after task id,
                               before sidecar
    task sidecar               after the task sidecar, before a poll; after a poll's answer
    each download              during a download (leaves a temp); after a download, before the
                               journal's outputs (its name is journaled first: not doubled)
    final sidecar, journal     after the final sidecar, before the final journal; after the
                               final journal

Each ends with the file done once (one task, one output, status SUCCEEDED) or, only when the
crash came after the "submitting" claim, in "needs attention" and never submitted again. The
claim is committed immediately before the POST goes out and a restart cannot tell the two apart,
so "after intent, before POST" is the one point where attention comes without a task (0 tasks).
No temp file is left after the restart.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_helpers import CrashPoint, Rig, task_part, temps

from runwatchd import fsutil
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.states import FileState
from runwatchd.store.record import FileRecord


def partial_download(url: str, directory: Path, choose: Callable[[str | None], Path]) -> None:
    """What a killed download leaves: a temp file beside the final name."""
    dest = choose("video/mp4")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fsutil.temp_path_for(dest).write_bytes(b"partial")


def partial_sidecar(path: Path) -> None:
    """What a kill while writing the sidecar leaves: its temp file."""
    fsutil.temp_path_for(sidecar.sidecar_path(path)).write_bytes(b"{")


def in_state(state: FileState) -> object:
    """A `when` for the store's writes: the write of a row in `state`."""
    return lambda record: record.state == state


def nth_call(n: int) -> Callable[..., bool]:
    """A CrashPoint `when` that accepts the n-th call only (the follower journals an output's
    name before its download and again after it: the second call is after the bytes landed)."""
    calls = itertools.count(1)
    return lambda *args: next(calls) == n


CRASH_POINTS: dict[str, tuple[CrashPoint, int, str]] = {
    # name: (where it crashes, tasks at the emulator, final sidecar status); in the order of
    # processor.py's writes (the module docstring maps them)
    "before the journal's uploading": (
        CrashPoint("put_unless_claimed", when=in_state(FileState.UPLOADING)), 1, "SUCCEEDED"),
    "after the journal's uploading, before upload": (CrashPoint("upload"), 1, "SUCCEEDED"),
    "after upload, before sidecar": (
        CrashPoint("upload", after=True, leave=partial_sidecar), 1, "SUCCEEDED"),
    "after sidecar, before journal": (
        CrashPoint("put_unless_claimed", when=in_state(FileState.TO_SUBMIT)), 1, "SUCCEEDED"),
    "after journal, before intent": (CrashPoint("claim_submit"), 1, "SUCCEEDED"),
    "after intent, before POST": (CrashPoint("create_task"), 0, "NEEDS_ATTENTION"),
    "after POST, before task id": (CrashPoint("create_task", after=True), 1, "NEEDS_ATTENTION"),
    "after the answer, at the journal's running": (
        CrashPoint("put", when=in_state(FileState.RUNNING)), 1, "NEEDS_ATTENTION"),
    "after task id, before sidecar": (
        CrashPoint("put", after=True, when=in_state(FileState.RUNNING)), 1, "SUCCEEDED"),
    "after the task sidecar, before a poll": (CrashPoint("get_task"), 1, "SUCCEEDED"),
    "after a poll's answer": (CrashPoint("get_task", after=True), 1, "SUCCEEDED"),
    "during a download": (CrashPoint("download", leave=partial_download), 1, "SUCCEEDED"),
    "after a download, before the journal's outputs": (
        CrashPoint("update_if", when=nth_call(2)), 1, "SUCCEEDED"),
    "after the final sidecar, before the final journal": (
        CrashPoint("put", when=in_state(FileState.SUCCEEDED)), 1, "SUCCEEDED"),
    "after the final journal": (
        CrashPoint("put", after=True, when=in_state(FileState.SUCCEEDED)), 1, "SUCCEEDED"),
}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_point_ends_with_one_correct_sidecar(rig: Rig, point: str) -> None:
    """Crash at the point, restart: one sidecar, the right status, no second task, no temps."""
    crash, tasks, status = CRASH_POINTS[point]
    shot = rig.still()
    rig.scan(crash)
    assert crash.fired.is_set()
    code, _ = rig.scan()
    assert status == task_part(shot)["status"]
    assert tasks == rig.stats()["tasks_created"]
    assert (0 if status == "SUCCEEDED" else 1) == code
    assert [sidecar.sidecar_path(shot)] == list(rig.root.glob("*.runway.json"))
    assert [] == temps(rig.root)
    if status == "SUCCEEDED":
        assert ["shot.png.mp4"] == sorted(p.name for p in (rig.root / "renders").iterdir())
    else:
        assert "attention" == rig.journal.get(shot).state


def test_a_crash_leaves_the_state_its_point_names(rig: Rig) -> None:
    """The crash "after sidecar, before journal" leaves a complete sidecar and the row at
    "uploading": what the restart table in processor.py expects to find there."""
    shot = rig.still()
    rig.scan(CrashPoint("put_unless_claimed", when=in_state(FileState.TO_SUBMIT)))
    record: FileRecord | None = rig.journal.get(shot)
    assert (FileState.UPLOADING, True) == (
        record.state if record else None, sidecar.read_sidecar(shot) is not None)


# -- the claim covers only a POST on the wire (issue 13 item 8) ---------------------------------


def test_a_crash_in_a_429_backoff_resubmits_after_restart(rig: Rig) -> None:
    """Killed while sleeping after a 429: the row is "to_submit", so the restart submits once."""
    rig.emu.set_faults(rate_limit_burst=1, scope=["generate"], retry_after=0.01)
    shot = rig.still()
    crash = CrashPoint("wait_to_resubmit")
    rig.scan(crash)
    assert crash.fired.is_set()
    record = rig.journal.get(shot)
    assert FileState.TO_SUBMIT == (record.state if record else None)
    code, _ = rig.scan()
    assert (0, "SUCCEEDED", 1) == (code, task_part(shot)["status"],
                                   rig.stats()["tasks_created"])


def test_a_502_is_retried_into_one_task(rig: Rig) -> None:
    """A 502 (load shedding: nothing was created) is retried; one task, no attention."""
    # seed 1: the first generation POST draws 0.13 (a 502), the second 0.85 (served).
    rig.emu.set_faults(error_rate=0.5, error_status=502, scope=["generate"], seed=1)
    shot = rig.still()
    code, _ = rig.scan()
    assert (0, "SUCCEEDED", 1) == (code, task_part(shot)["status"],
                                   rig.stats()["tasks_created"])
    assert 1 == rig.emu.stats()["faults_injected"].get("error")


def test_a_timeout_after_sending_names_the_send_time(rig: Rig) -> None:
    """A POST whose answer never comes: attention, and the error names when it was sent."""
    rig.client_timeout = 0.5
    rig.emu.set_faults(slow_rate=1.0, slow_seconds=1.5, scope=["generate"])
    shot = rig.still()
    code, _ = rig.scan()
    record = rig.journal.get(shot)
    assert (1, "attention") == (code, record.state if record else None)
    error = record.error if record else ""
    assert re.search(r"the POST sent at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ may have created a task",
                     error or ""), error
    assert "check the Runway dashboard's tasks for shot.png" in (error or "")
