"""Tests for runwatchd.daemon.reload: SIGHUP's reload in a Daemon, on the in-process emulator."""

from __future__ import annotations

from pathlib import Path

from daemon_helpers import KEY, Runner, uploads
from helpers import drop, wait_for
from helpers import has_sidecar as done

from runwatchd.daemon.reload import RETIRED_CLIENT_GRACE
from runwatchd.runway.client import RunwayClient


def test_reload_adds_and_removes_folders(runner: Runner, tmp_path: Path) -> None:
    """SIGHUP's reload starts watching a new folder and stops watching a removed one."""
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    current = {"cfg": runner.config([old_dir])}
    daemon = runner.start(current["cfg"], config_loader=lambda: current["cfg"])
    first = drop(old_dir / "first.jpg")
    assert wait_for(lambda: done(first), 10)
    waiting = drop(new_dir / "waiting.jpg")  # there before the reload: the reload's scan finds it
    current["cfg"] = runner.config([new_dir])
    daemon.request_reload()
    assert wait_for(lambda: done(waiting), 10)
    assert [new_dir] == [f.root for f in daemon.folders]
    ignored = drop(old_dir / "ignored.jpg")
    fresh = drop(new_dir / "fresh.jpg")
    assert wait_for(lambda: done(fresh), 10)
    assert not done(ignored)
    assert ignored not in daemon.table
    assert 3 == uploads(runner.emu)


class Closing(RunwayClient):
    """A client that remembers being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_reload_closes_the_replaced_client_once_nothing_uses_it(runner: Runner,
                                                                 tmp_path: Path) -> None:
    """A reload's new client takes over; the old one is closed after the grace, not leaked."""
    hot = tmp_path / "hot"
    hot.mkdir()
    now = [1000.0]
    cfg = runner.config([hot])
    old_client, new_client = Closing(KEY, runner.emu.url), Closing(KEY, runner.emu.url)
    daemon = runner.daemon(cfg, client=old_client, clock=lambda: now[0],
                           client_factory=lambda _cfg: new_client, config_loader=lambda: cfg)
    try:
        daemon.reloader.reload()
        assert (new_client, [old_client]) == (daemon.client_ref.current,
                                              daemon.reloader.retired_clients())
        daemon.reloader.close_retired_clients()
        assert False is old_client.closed  # still within the grace: a poll may use it
        now[0] += RETIRED_CLIENT_GRACE + 1
        daemon.reloader.close_retired_clients()
        assert (True, []) == (old_client.closed, daemon.reloader.retired_clients())
    finally:
        daemon.folders.stop_watching()
        new_client.close()
