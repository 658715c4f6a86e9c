"""Tests for runwatchd.daemon.waker: a lock-free wake-up for the main loop."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from runwatchd.daemon.waker import Waker


@pytest.fixture
def waker() -> Iterator[Waker]:
    """A Waker, closed after the test."""
    w = Waker()
    yield w
    w.close()


def test_wait_times_out_without_a_wake(waker: Waker) -> None:
    """No wake(): wait() returns False after its timeout."""
    assert False is waker.wait(0.01)


def test_a_wake_before_the_wait_is_not_lost(waker: Waker) -> None:
    """wake() before wait(): the wait returns at once."""
    waker.wake()
    started = time.monotonic()
    assert True is waker.wait(5.0)
    assert time.monotonic() - started < 1.0


def test_a_burst_of_wakes_costs_one_wait(waker: Waker) -> None:
    """Thousands of wakes (more than the pipe holds) are drained by one wait."""
    for _ in range(100_000):
        waker.wake()
    assert (True, False) == (waker.wait(1.0), waker.wait(0.0))


def test_a_wake_from_another_thread_ends_the_wait(waker: Waker) -> None:
    """A worker thread's wake() ends the main thread's wait early."""
    timer = threading.Timer(0.05, waker.wake)
    timer.start()
    started = time.monotonic()
    try:
        assert True is waker.wait(10.0)
    finally:
        timer.join()
    assert time.monotonic() - started < 5.0


def test_a_signal_storm_during_wait_never_deadlocks(waker: Waker) -> None:
    """Handlers that only call wake(), hit by thousands of signals mid-wait, leave the main
    thread responsive (threading.Event.set() here deadlocked: issue 13)."""
    seen = 0

    def handler(signum: int, frame: object) -> None:
        nonlocal seen
        seen += 1
        waker.wake()

    old = signal.signal(signal.SIGUSR1, handler)
    stop = threading.Event()

    def storm() -> None:
        pid = os.getpid()
        for _ in range(3000):
            if stop.is_set():
                return
            os.kill(pid, signal.SIGUSR1)

    sender = threading.Thread(target=storm)
    try:
        sender.start()
        deadline = time.monotonic() + 20
        while sender.is_alive() and time.monotonic() < deadline:
            waker.wait(0.001)
        stop.set()
        sender.join(10)
        assert False is sender.is_alive()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen > 0
