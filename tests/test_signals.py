"""Signals at the worst moment: storms of SIGHUP at a busy daemon, then SIGTERM (issue 13).

The handlers used to call Event.set() and log, both of which take locks: a signal landing while
the main thread held one of them blocked the process for ever, and nested handlers ended in
RecursionError. Now a handler sets a flag and writes to a self-pipe; these tests prove a real
`runwatchd run` process survives the storm and exits 0 within its grace time, every time.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from daemon_process import KEY, Setup
from helpers import drop, wait_for

from runwatchd.emulator import Emulator

GRACE = 30.0  # [daemon] grace_seconds in Setup.write_config



def storm_then_stop(setup: Setup, hups: int) -> tuple[int, float, str]:
    """Start a daemon busy with uploads, send `hups` SIGHUPs back to back, then SIGTERM;
    (exit code, seconds from SIGTERM to exit, log)."""
    setup.write_config(concurrency=4)
    setup.emu.set_faults(delay=0.05, scope=["storage"])
    daemon = setup.start()
    for i in range(60):
        drop(setup.hot / f"f{i}.jpg")
    assert wait_for(lambda: setup.stats()["uploads_completed"] >= 4, 20), daemon.log()
    pid = daemon.proc.pid
    for _ in range(hups):
        # One every ~millisecond: spread out, each lands at another point of the main loop
        # (the report that deadlocked 3 of 3 sent them 3 ms apart).
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.001)
    os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    code = daemon.proc.wait(GRACE + 15)
    return code, time.monotonic() - started, daemon.log()


@pytest.mark.parametrize("round_", range(2))
def test_a_sighup_storm_then_sigterm_exits_0_within_the_grace(daemon_setup: Setup,
                                                               round_: int) -> None:
    """3,000 SIGHUPs at a busy daemon, then SIGTERM: exit 0 within the grace time, no
    traceback, and the stop is logged by the main loop."""
    code, took, log = storm_then_stop(daemon_setup, 3000)
    assert (0, True, False) == (code, took < GRACE, "Traceback" in log), log[-3000:]
    assert "received SIGTERM: finishing uploads in flight, then exiting" in log


def test_sigterm_alone_to_a_busy_daemon_exits_0(daemon_setup: Setup) -> None:
    """A single SIGTERM to a daemon in the middle of uploads exits 0 promptly."""
    code, took, log = storm_then_stop(daemon_setup, 0)
    assert (0, True) == (code, took < GRACE), log[-3000:]


@pytest.mark.soak
def test_the_signal_storm_passes_twenty_times_in_a_row(tmp_path: Path) -> None:
    """Issue 13's bar: the storm test 20 times in a row, each a fresh daemon and emulator."""
    for n in range(20):
        base = tmp_path / f"round{n}"
        base.mkdir()
        with Emulator(api_secret=KEY) as emu:
            s = Setup(base, emu)
            try:
                code, took, log = storm_then_stop(s, 3000)
            finally:
                s.kill_all()
        assert (0, True) == (code, took < GRACE), f"round {n}: {log[-3000:]}"
