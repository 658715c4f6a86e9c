"""Fixtures of the emulator's tests: a fake clock and emulators started with test defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from emulator_helpers import HEADERS, KEY
from helpers import FakeClock

from runwatchd.emulator import Emulator


@pytest.fixture
def clock() -> FakeClock:
    """The clock every emulator of the test follows."""
    return FakeClock(1_790_000_000.0)


@pytest.fixture
def make_emu(clock: FakeClock) -> Iterator[Any]:
    """Start emulators with test defaults; every one is stopped at the end."""
    started: list[Emulator] = []

    def make(**kw: Any) -> Emulator:
        kw.setdefault("api_secret", KEY)
        kw.setdefault("clock", clock)
        kw.setdefault("task_seconds", 10.0)
        kw.setdefault("pending_seconds", 1.0)
        emu = Emulator(**kw).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(make_emu: Any) -> Emulator:
    """An emulator with the test defaults."""
    return make_emu()


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    """An API client of `emu` with the test key and version header."""
    with httpx.Client(base_url=emu.url, headers=HEADERS, timeout=10) as client:
        yield client
