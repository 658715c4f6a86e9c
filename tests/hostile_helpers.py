"""The hostile-input tests' rig: an emulator, a client that records its requests, every log
record; and a folder made to refuse writes."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_helpers import (
    LogCapture,
    RecordingTransport,
    capture_logs,
    new_secret,
)

from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy

SC = sidecar.sidecar_path


@dataclass
class Rig:
    base: Path
    hot: Path
    emu: Emulator
    client: RunwayClient
    wire: RecordingTransport
    logs: LogCapture
    rng: random.Random


@contextmanager
def open_rig(tmp_path: Path) -> Iterator[Rig]:
    """An emulator, a client that records its requests, and every log record."""
    secret = new_secret()
    hot = tmp_path / "hot"
    hot.mkdir()
    wire = RecordingTransport()
    with capture_logs() as logs, Emulator(api_secret=secret, task_seconds=0.2) as emu:
        client = RunwayClient(secret, emu.url, transport=wire, timeout=5.0,
                              retry=RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=0.2))
        with client:
            yield Rig(tmp_path, hot, emu, client, wire, logs, random.Random(3))


def has_sidecar(*paths: Path) -> bool:
    return all(SC(p).exists() for p in paths)


def immutable(directory: Path, on: bool) -> None:
    """Make `directory` refuse new entries: chmod for a normal user, chattr +i for root (whom
    permission bits do not stop). Skips the test where neither works."""
    if os.geteuid() != 0:
        directory.chmod(0o555 if on else 0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    done = subprocess.run(["chattr", "+i" if on else "-i", str(directory)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr does not work here: {done.stderr.decode().strip()}")
