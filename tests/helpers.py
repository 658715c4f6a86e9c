"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

import psutil

from runwatchd.lifecycle.sidecar import sidecar_path

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


def multipart_parts(content_type: str, body: bytes) -> list[tuple[bytes, bytes]]:
    """Split a multipart body into (headers, payload) pairs, checking its framing exactly."""
    boundary = content_type.split("boundary=")[1].encode()
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    chunks = body[: -len(boundary) - 6].split(b"--" + boundary + b"\r\n")
    assert b"" == chunks[0]
    parts = []
    for chunk in chunks[1:]:
        head, _, payload = chunk.partition(b"\r\n\r\n")
        parts.append((head, payload.removesuffix(b"\r\n")))
    return parts


class PeakRss:
    """Samples this process's RSS every 5 ms while its `with` block runs; `growth` is then the
    peak above the RSS at the start (the sampler thread is joined on the way out)."""

    def __enter__(self) -> Self:
        self._proc = psutil.Process()
        self.baseline = self.peak = self._proc.memory_info().rss
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample)
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._sampler.join()

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
