"""Tests for the start-up sweep of temp files left by dead runwatchd processes
(runwatchd.lifecycle.recovery.sweep_dead_temps, run by the store's owner at start-up)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import RULE, CrashPoint, Rig, temps

from runwatchd import fsutil
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.recovery import sweep_dead_temps


def temp_of(directory: Path, pid: int, start: int = 0, name: str = "shot.png") -> Path:
    """A temp file named as process `pid` (started at `start`, 0: unknown) would name it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".{name}{fsutil.TEMP_MARK}-{pid}-{start}-0123456789ab"
    path.write_bytes(b"partial")
    return path


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


@pytest.fixture
def live_runwatchd() -> Iterator[int]:
    """A live process whose command line names runwatchd (as `runwatchd upload` would)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "runwatchd"],
                            stdin=subprocess.PIPE)
    try:
        yield proc.pid
    finally:
        proc.communicate(b"")


def test_the_sweep_removes_a_dead_process_temps_at_any_depth(tmp_path: Path,
                                                             dead_pid: int) -> None:
    """Temps of a gone pid and old-style temps go, in subfolders too; the count says so."""
    dead = temp_of(tmp_path / "a" / "b", dead_pid)
    old = tmp_path / f".x.png{fsutil.TEMP_MARK}-0123456789ab"
    old.write_bytes(b"")
    assert (2, []) == (sweep_dead_temps([tmp_path]), temps(tmp_path))
    assert (False, False) == (dead.exists(), old.exists())


def test_the_sweep_keeps_a_live_runwatchd_temps(tmp_path: Path, live_runwatchd: int) -> None:
    """A temp of a live runwatchd process (an upload beside the daemon) is left alone."""
    live = temp_of(tmp_path, live_runwatchd, fsutil.process_start(live_runwatchd) or 0)
    mine = fsutil.temp_path_for(tmp_path / "own.json")
    mine.write_bytes(b"")
    assert (0, sorted([live, mine])) == (sweep_dead_temps([tmp_path]), sorted(temps(tmp_path)))


def test_the_sweep_removes_temps_of_a_pid_reused_by_another_program(tmp_path: Path) -> None:
    """A live pid whose command line is not runwatchd's did not make the temp: removed."""
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE) as other:
        temp = temp_of(tmp_path, other.pid)
        assert 1 == sweep_dead_temps([tmp_path])
        other.communicate(b"")
    assert not temp.exists()


def test_the_sweep_removes_only_our_temp_names(tmp_path: Path, dead_pid: int) -> None:
    """Names that merely look like temps (no leading dot, another mark) are never touched."""
    keep = [tmp_path / f"shot{fsutil.TEMP_MARK}-{dead_pid}-0-0123456789ab",
            tmp_path / f".shot.png.tmp-{dead_pid}-0-0123456789ab", tmp_path / "shot.png"]
    for path in keep:
        path.write_bytes(b"user's")
    assert (0, sorted(keep)) == (sweep_dead_temps([tmp_path]), sorted(tmp_path.iterdir()))


def test_the_sweep_follows_no_symlink(tmp_path: Path, dead_pid: int) -> None:
    """A symlinked folder is not entered: what it points at is not ours to clean."""
    elsewhere = temp_of(tmp_path / "elsewhere", dead_pid)
    (tmp_path / "hot").mkdir()
    (tmp_path / "hot" / "link").symlink_to(tmp_path / "elsewhere")
    assert (0, True) == (sweep_dead_temps([tmp_path / "hot"]), elsewhere.exists())


def test_the_sweep_is_bounded(tmp_path: Path, dead_pid: int) -> None:
    """It stops after `limit` entries rather than walk a huge tree for ever."""
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
    temp_of(tmp_path / "d4" / "deep", dead_pid)
    assert 0 == sweep_dead_temps([tmp_path], limit=3)


def test_the_sweep_walks_a_folder_once(tmp_path: Path, dead_pid: int) -> None:
    """An output dir inside a watched folder is walked once, its temps removed once."""
    temp_of(tmp_path / "renders", dead_pid)
    assert 1 == sweep_dead_temps([tmp_path, tmp_path / "renders"])


def test_start_up_removes_a_dead_process_temps(rig: Rig, dead_pid: int,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A daemon's start-up removes a dead runwatchd's temps in the folder and beside a file
    done long ago, logging each file and the count; a live runwatchd's temp stays."""
    rig.still()
    assert 0 == rig.scan()[0]
    beside = temp_of(rig.root / "sub", dead_pid, name="old.png.runway.json")
    output = temp_of(rig.root / "renders", dead_pid, name="shot.png.mp4")
    with caplog.at_level("INFO", logger="runwatchd.lifecycle.recovery"):
        assert 0 == rig.scan()[0]
    assert [] == temps(rig.root)
    messages = [r.getMessage() for r in caplog.records]
    assert {f"removed temp file {beside} left by a stopped process",
            f"removed temp file {output} left by a stopped process",
            "removed 2 temp file(s) left by stopped runwatchd processes"} <= set(messages)


def test_start_up_sweeps_an_output_dir_outside_the_folder(rig: Rig, tmp_path: Path,
                                                          dead_pid: int) -> None:
    """Output dirs the journal knows are swept even when no watched folder holds them."""
    outside = tmp_path / "outside"
    rule = {**RULE, "output_dir": str(outside)}
    rig.still()
    assert 0 == rig.scan(cfg=rig.config(rule))[0]
    temp = temp_of(outside, dead_pid, name="shot.png.mp4")
    assert 0 == rig.scan(cfg=rig.config(rule))[0]
    assert (False, True) == (temp.exists(), any(outside.iterdir()))


def test_a_second_process_sweeps_nothing(rig: Rig, dead_pid: int) -> None:
    """Only the store's owner sweeps: a scan beside a running daemon leaves temps alone."""
    temp = temp_of(rig.root, dead_pid)
    owner = type(rig.journal)(rig.state / "journal.sqlite3")
    try:
        assert owner.take_ownership()
        rig.scan()
    finally:
        owner.close()
    assert temp.exists()



def test_recovery_keeps_a_live_runwatchd_temp_beside_a_file_in_progress(
        rig: Rig, live_runwatchd: int) -> None:
    """A crash leaves a file "uploading"; the restart's repair beside it spares the sidecar
    temp of a live `runwatchd upload` of that file, and the file still ends done."""
    shot = rig.still()
    rig.scan(CrashPoint("upload"))
    live = temp_of(rig.root, live_runwatchd, fsutil.process_start(live_runwatchd) or 0,
                   name="shot.png.runway.json")
    assert 0 == rig.scan()[0]
    assert ([live], True) == (temps(rig.root), sidecar.read_sidecar(shot) is not None)
