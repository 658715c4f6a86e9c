"""The cluster acceptance runs' shared fixture: an emulator of their own, fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_helpers import fast_emulator

from runwatchd.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fast emulator of this test's own (the session's shared one keeps Runway's limits)."""
    with fast_emulator() as emu:
        yield emu
