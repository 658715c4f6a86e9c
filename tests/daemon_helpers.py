"""Running Daemons in-process, in threads, against the in-process emulator."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import wait_for

from runwatchd.runway.client import RetryPolicy, RunwayClient
from runwatchd.config.load import Config, parse_config
from runwatchd.daemon.core import Daemon
from runwatchd.emulator import Emulator
from runwatchd.store.sqlite import SqliteStore

KEY = "daemon-test-key-7f3a"


def uploads(emu: Emulator) -> int:
    return int(emu.stats()["uploads_created"])


class Runner:
    """Builds configs and runs Daemons in threads; stops and closes everything at teardown."""

    def __init__(self, tmp_path: Path, emulator: Emulator) -> None:
        self.tmp = tmp_path
        self.emu = emulator
        self.state = tmp_path / "state"
        self._running: list[tuple[Daemon, threading.Thread]] = []

    def config(self, folders: list[Path | dict], *, concurrency: int = 4, grace: float = 30.0,
               **defaults: object) -> Config:
        data = {
            "runway": {"concurrency": concurrency, "state_dir": str(self.state)},
            "daemon": {"grace_seconds": grace},
            "defaults": {"settle_seconds": 0.2, "poll_interval": 0.1, **defaults},
            "folder": [f if isinstance(f, dict) else {"path": str(f)} for f in folders],
        }
        return parse_config(data, "test")

    def daemon(self, cfg: Config, *, mode: str = "run", attempts: int = 2,
               **kw: object) -> Daemon:
        client = RunwayClient(KEY, self.emu.url,
                              retry=RetryPolicy(max_attempts=attempts, initial_delay=0.01))
        journal = SqliteStore(self.state / "journal.sqlite3")
        return Daemon(cfg, client, journal, state_dir=self.state, mode=mode, **kw)

    def start(self, cfg: Config, **kw: object) -> Daemon:
        daemon = self.daemon(cfg, **kw)
        thread = threading.Thread(target=daemon.run, name="test-daemon")
        thread.start()
        self._running.append((daemon, thread))
        assert wait_for(lambda: daemon._started or not thread.is_alive(), 10)
        assert thread.is_alive()
        return daemon

    def scan(self, cfg: Config, **kw: object) -> tuple[int, Daemon]:
        daemon = self.daemon(cfg, mode="scan", **kw)
        try:
            return daemon.run(), daemon
        finally:
            daemon.client.close()
            daemon.journal.close()

    def stop(self, daemon: Daemon) -> None:
        for d, thread in list(self._running):
            if d is daemon:
                d.request_stop()
                thread.join(20)
                assert not thread.is_alive()
                d.client.close()
                d.journal.close()
                self._running.remove((d, thread))

    def stop_all(self) -> None:
        for daemon, _ in list(self._running):
            self.stop(daemon)


@contextmanager
def running(tmp_path: Path) -> Iterator[Runner]:
    """A Runner on a fresh emulator; every daemon it started is stopped and closed at the end."""
    with Emulator(api_secret=KEY) as emu:
        r = Runner(tmp_path, emu)
        try:
            yield r
        finally:
            r.stop_all()
