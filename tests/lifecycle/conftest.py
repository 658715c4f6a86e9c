"""Fixtures for the lifecycle's tests: a fast emulator and a Rig (files, a store, processors and
scan-mode daemons) on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import SECRET, Rig

from runwatchd.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An emulator whose tasks finish in a fraction of a second."""
    with Emulator(api_secret=SECRET, task_seconds=0.05, pending_seconds=0.02) as emu:
        yield emu


@pytest.fixture
def rig(tmp_path: Path, emulator: Emulator) -> Iterator[Rig]:
    """A Rig on the emulator, closed after the test."""
    r = Rig(tmp_path, emulator)
    yield r
    r.close()
