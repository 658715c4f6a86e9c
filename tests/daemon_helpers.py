"""The one place tests build Daemons: in-process, in threads, against the in-process emulator.

`Harness` makes each Daemon its own journal connection (and client, unless given one), runs it
in a DaemonThread, and at the end stops every daemon, waits for its workers and closes what it
opened. `Runner` is a Harness with an emulator and a config builder, for tests/daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runwatchd.config.load import Config, parse_config
from runwatchd.daemon.core import Daemon
from runwatchd.daemon.in_thread import DaemonThread
from runwatchd.daemon.policy import RUN, SCAN, RunPolicy
from runwatchd.emulator import Emulator
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy
from runwatchd.store import open_store
from runwatchd.store.base import Store

KEY = "daemon-test-key-7f3a"


def uploads(emu: Emulator) -> int:
    return int(emu.stats()["uploads_created"])


class Harness:
    """Builds Daemons on `state` (their journal's directory) and runs them in threads."""

    def __init__(self, state: Path, url: str = "", key: str = KEY) -> None:
        self.state = state
        self.url = url
        self.key = key
        self._closers: dict[int, list[Callable[[], None]]] = {}  # id(daemon) -> what to close
        self._threads: dict[int, DaemonThread] = {}
        self._daemons: list[Daemon] = []

    def client(self, *, attempts: int = 2, retry: RetryPolicy | None = None) -> RunwayClient:
        """A client on the harness's API; closed with the daemon it is given to."""
        return RunwayClient(self.key, self.url,
                            retry=retry or RetryPolicy(max_attempts=attempts, initial_delay=0.01))

    def daemon(self, cfg: Config, *, client: RunwayClient | None = None, attempts: int = 2,
               journal: Store | None = None, policy: RunPolicy = RUN, **kw: Any) -> Daemon:
        """A Daemon on its own store connection; a client and a store are made unless given
        (what is given stays the caller's to close)."""
        closers: list[Callable[[], None]] = []
        if client is None:
            client = self.client(attempts=attempts)
            closers.append(client.close)
        if journal is None:
            journal = open_store(self.state)
            closers.append(journal.close)
        daemon = Daemon(cfg, client, journal, state_dir=self.state, policy=policy, **kw)
        self._closers[id(daemon)] = closers
        self._daemons.append(daemon)
        return daemon

    def launch(self, daemon: Daemon) -> DaemonThread:
        """Run `daemon` in a thread; returns once it has started."""
        thread = DaemonThread(daemon, name="test-daemon")
        self._threads[id(daemon)] = thread
        thread.start()
        assert thread.is_alive()
        return thread

    def run(self, daemon: Daemon) -> int:
        """Run `daemon` here, to its end (a scan), and close what it used."""
        try:
            return daemon.run()
        finally:
            self.release(daemon)

    def stop(self, daemon: Daemon) -> None:
        """Stop a started daemon, join it, and close what it used."""
        thread = self._threads.pop(id(daemon))
        thread.stop(30)
        assert not thread.is_alive(), "the daemon did not stop within 30 s"
        assert thread.error is None, thread.error
        self.release(daemon)

    def release(self, daemon: Daemon) -> None:
        """Wait for the daemon's workers, then close its journal (and client, if ours)."""
        daemon.scheduler.join()
        for close in self._closers.pop(id(daemon), []):
            close()

    def close(self) -> None:
        for daemon in list(self._daemons):
            if id(daemon) in self._threads:
                self.stop(daemon)
            self.release(daemon)
        self._daemons.clear()


@contextmanager
def harness(state: Path, url: str = "", key: str = KEY) -> Iterator[Harness]:
    """A Harness whose daemons are all stopped and closed at the end."""
    h = Harness(state, url, key)
    try:
        yield h
    finally:
        h.close()


class Runner(Harness):
    """A Harness on an emulator, with a config builder."""

    def __init__(self, tmp_path: Path, emulator: Emulator) -> None:
        super().__init__(tmp_path / "state", emulator.url)
        self.tmp = tmp_path
        self.emu = emulator

    def config(self, folders: list[Path | dict[str, Any]], *, concurrency: int = 4,
               grace: float = 30.0, **defaults: object) -> Config:
        data = {
            "runway": {"concurrency": concurrency, "state_dir": str(self.state)},
            "daemon": {"grace_seconds": grace},
            "defaults": {"settle_seconds": 0.2, "poll_interval": 0.1, **defaults},
            "folder": [f if isinstance(f, dict) else {"path": str(f)} for f in folders],
        }
        return parse_config(data, "test")

    def start(self, cfg: Config, **kw: Any) -> Daemon:
        """Build a Daemon for `cfg` and run it in a thread; returns once it has started."""
        daemon = self.daemon(cfg, **kw)
        self.launch(daemon)
        return daemon

    def scan(self, cfg: Config, **kw: Any) -> tuple[int, Daemon]:
        """A scan to its end: (exit code, the daemon)."""
        daemon = self.daemon(cfg, policy=SCAN, **kw)
        return self.run(daemon), daemon


@contextmanager
def running(tmp_path: Path) -> Iterator[Runner]:
    """A Runner on a fresh emulator; every daemon it started is stopped and closed at the end."""
    with Emulator(api_secret=KEY) as emu:
        r = Runner(tmp_path, emu)
        try:
            yield r
        finally:
            r.close()


@pytest.fixture
def runner(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Runner]:
    """A Runner on a fresh emulator, INFO lines captured (a fixture: conftest imports it)."""
    caplog.set_level(logging.INFO)
    with running(tmp_path) as r:
        yield r
