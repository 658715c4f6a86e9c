"""Shared fixtures: a thread-leak guard on every test, `wait_for`, and the `clip` to upload;
strict store transitions for the whole suite."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `from helpers import wait_for` in any import mode

from daemon_helpers import runner  # noqa: E402,F401 - a fixture
from daemon_process import KEY, Setup  # noqa: E402 - needs the path above
from helpers import wait_for as _wait_for  # noqa: E402 - needs the path above
from postgres_helpers import postgres_db, postgres_server  # noqa: E402,F401 - fixtures
from service_helpers import listener, services  # noqa: E402,F401 - fixtures

from runwatchd.emulator import Emulator  # noqa: E402 - after the path, like the helpers
from runwatchd.store.transitions import STRICT_ENV

# Every store write the suite makes must be an allowed lifecycle transition: a disallowed one
# raises instead of warning. Set at import, so CLI and daemon child processes inherit it.
os.environ[STRICT_ENV] = "1"

LEAK_GRACE = 2.0


def _watched(thread: threading.Thread) -> bool:
    """Threads a test must not leave behind: non-daemon threads and watchdog's threads."""
    if not thread.daemon:
        return True
    from watchdog.observers.inotify_c import InotifyFD
    from watchdog.utils import BaseThread

    # InotifyFD.get_instance() is a process-wide singleton by design, not a leak.
    return isinstance(thread, BaseThread) and thread is not InotifyFD._instance


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves new non-daemon or watchdog observer/emitter threads running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE
    leaked: list[threading.Thread] = []
    for thread in threading.enumerate():
        if thread in before or thread is threading.current_thread() or not _watched(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread)
    for thread in leaked:
        stop = getattr(thread, "stop", None)
        if callable(stop):  # a watchdog thread: stop it so it does not disturb later tests
            stop()
    if leaked:
        pytest.fail("test leaked threads: " + ", ".join(repr(t) for t in leaked), pytrace=False)


@pytest.fixture
def wait_for() -> Callable[..., object]:
    """The `helpers.wait_for` function, as a fixture."""
    return _wait_for


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A 5000-byte .mp4 with varied content."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(5000))
    return path


@pytest.fixture
def daemon_setup(tmp_path: Path) -> Iterator[Setup]:
    """`runwatchd run` processes' config and environment on a fresh emulator of their own;
    every daemon started is killed at the end."""
    with Emulator(api_secret=KEY) as emu:
        s = Setup(tmp_path, emu)
        yield s
        s.kill_all()
