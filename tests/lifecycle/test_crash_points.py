"""Tests for the order of writes drawn in runwatchd.lifecycle.processor: a scan-mode Daemon
"crashes" at one point and a fresh Daemon starts on the same state directory.

A crash is an exception, raised by the client or the store handed to the Daemon, that nothing in
runwatchd turns into a state change, so the journal and the files are left as a process dying at
that point leaves them (test_generation.py also kills a real one).
"""

from __future__ import annotations

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


CRASH_POINTS: dict[str, tuple[CrashPoint, int, str]] = {
    # name: (where it crashes, tasks at the emulator, final sidecar status)
    "after upload, before sidecar": (
        CrashPoint("upload", after=True, leave=partial_sidecar), 1, "SUCCEEDED"),
    "after sidecar, before journal": (
        CrashPoint("put_unless_claimed", when=in_state(FileState.TO_SUBMIT)), 1, "SUCCEEDED"),
    "after journal, before intent": (CrashPoint("claim_submit"), 1, "SUCCEEDED"),
    "after intent, before POST": (CrashPoint("create_task"), 0, "NEEDS_ATTENTION"),
    "after POST, before task id": (CrashPoint("create_task", after=True), 1, "NEEDS_ATTENTION"),
    "after task id, before sidecar": (
        CrashPoint("put", after=True, when=in_state(FileState.RUNNING)), 1, "SUCCEEDED"),
    "during a download": (CrashPoint("download", leave=partial_download), 1, "SUCCEEDED"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
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
        assert (rig.root / "renders" / "shot.png.mp4").exists()
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
