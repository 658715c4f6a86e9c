"""One daemon per store, with real processes (issue 13 item 4): a second `runwatchd run` on the
same state directory refuses to start, `scan` beside it still works, and a daemon whose journal
is deleted or replaced under it stops with one ERROR line and exit 1 (systemd restarts it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli
from helpers import wait_for

from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.store.sqlite_leases import read_owner

SECRET = "owner-test-key"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET) as emu:
        yield emu


class Setup:
    def __init__(self, tmp_path: Path, emu: Emulator) -> None:
        self.tmp = tmp_path
        self.hot = tmp_path / "hot"
        self.hot.mkdir()
        self.journal = tmp_path / "state" / "journal.sqlite3"
        self.config = tmp_path / "runwatchd.toml"
        self.config.write_text(
            f'[runway]\nstate_dir = "{tmp_path / "state"}"\n'
            '[defaults]\nsettle_seconds = 0.1\nrescan_interval = 0\n'
            f'[[folder]]\npath = "{self.hot}"\n', encoding="utf-8")
        self.env = cli_env(tmp_path, emu.url, SECRET)

    def start(self) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-m", "runwatchd", "run", "-c", str(self.config)], env=self.env,
            cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        owner = wait_for(lambda: read_owner(self.journal), timeout=30)
        assert owner is not None and child.pid == owner.pid
        return child

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "-c", str(self.config)], self.env, self.tmp)


def stop(child: subprocess.Popen[str]) -> str:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    return err


def test_a_second_run_on_the_same_state_dir_refuses(tmp_path: Path, emulator: Emulator) -> None:
    """`run` twice: the second exits 2 naming the first's pid; `scan` beside it still works."""
    s = Setup(tmp_path, emulator)
    first = s.start()
    try:
        second = s.run("run")
        assert 2 == second.returncode, second.stderr
        assert f"process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        shot = s.hot / "shot.png"
        make_png(shot, seed=3)
        assert 0 == s.run("scan").returncode
        assert sidecar.read_sidecar(shot) is not None
        assert None is first.poll()
    finally:
        stop(first)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_daemon_whose_journal_goes_stops_with_one_line(tmp_path: Path, emulator: Emulator,
                                                        how: str) -> None:
    """Journal deleted or replaced under `run`: exit 1 and one ERROR line naming the path."""
    s = Setup(tmp_path, emulator)
    child = s.start()
    try:
        if how == "deleted":
            os.unlink(s.journal)
        else:
            other = s.journal.with_name("other.sqlite3")
            other.write_bytes(s.journal.read_bytes())
            os.replace(other, s.journal)
        assert 1 == child.wait(timeout=20)
    finally:
        err = stop(child)
    lines = [line for line in err.splitlines() if "ERROR" in line]
    assert 1 == len(lines), err
    assert f"the journal {s.journal} was {how}" in lines[0]
    assert "restart runwatchd" in lines[0]
    assert "Traceback" not in err
