"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runwatchd.sidecar import sidecar_path

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll `predicate` until it returns something truthy or `timeout` passes.

    Returns that value, or the last falsy one on timeout, so tests read
    `assert wait_for(lambda: ...)`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class FakeClock:
    """A clock tests move by hand, so timeouts, expiry and lifecycles need no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drop(path: Path, size: int = 600) -> Path:
    """Write a file of random bytes (parents made as needed), as a user dropping media would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def has_sidecar(path: Path) -> bool:
    """True once the daemon wrote `path`'s sidecar."""
    return sidecar_path(path).exists()
