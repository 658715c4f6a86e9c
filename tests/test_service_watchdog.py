"""The watchdog follows the daemon's health, in-process (a test must kill an observer), and
a watched folder's mount going away and coming back, on one Folder with a hand-driven clock;
the service user from the sysusers file."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_helpers import harness
from helpers import wait_for
from service_helpers import SECRET, sidecar_of

from runwatchd.cli.demo import make_png
from runwatchd.config.load import FolderConfig, FolderSettings, load_config
from runwatchd.daemon.core import Daemon
from runwatchd.emulator import Emulator
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy
from runwatchd.service.notify import Notifier
from runwatchd.watch.folders import Folder


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An emulator that accepts only SECRET."""
    with Emulator(api_secret=SECRET, task_seconds=0.3) as emu:
        yield emu


# -- the watchdog follows the daemon's health (in-process: a test must kill an observer) ------


# Retries in milliseconds: a test waits on the API without waiting out real backoffs.
FAST_RETRY = RetryPolicy(max_attempts=10_000, initial_delay=0.02, max_delay=0.05, deadline=60)


@pytest.fixture
def inprocess(tmp_path, emulator, listener) -> Iterator[Callable[[], Daemon]]:
    """Start a Daemon in a thread with a Notifier on the test socket (WatchdogSec 0.6 s)."""
    clients: list[RunwayClient] = []

    def client_factory(_cfg: object = None) -> RunwayClient:
        clients.append(RunwayClient(SECRET, emulator.url, retry=FAST_RETRY))
        return clients[-1]

    with harness(tmp_path / "state") as h:

        def start() -> Daemon:
            hot = tmp_path / "hot"
            hot.mkdir()
            cfg_path = tmp_path / "c.toml"
            cfg_path.write_text(f'[[folder]]\npath = "{hot}"\nsettle_seconds = 0.2\n'
                                "rescan_interval = 0\n")
            cfg = load_config(cfg_path)
            daemon = h.daemon(cfg, client=client_factory(),
                              notifier=Notifier(listener.path, watchdog_usec=600_000),
                              client_factory=client_factory, config_loader=lambda: cfg)
            h.launch(daemon)
            return daemon

        yield start
    for client in clients:
        client.close()


def test_pings_stop_while_an_observer_is_dead_and_resume_once_restarted(
        inprocess, listener, caplog):
    """A dead observer makes the daemon unhealthy: WATCHDOG=1 stops (systemd would restart
    it). The folder's own check restarts the observer, pings resume, and events work again."""
    caplog.set_level(logging.INFO)
    daemon = inprocess()
    listener.wait("READY", "1")
    folder = daemon.folders[0]
    folder.tick = lambda now, rescan: None  # hold off the restart, to see the pings stop
    folder._watcher._observer.stop()  # noqa: SLF001 - the only way to kill an observer
    assert wait_for(lambda: not folder._watcher.is_alive(), 5)  # noqa: SLF001
    dead = len(listener.messages)
    listener.pump(lambda: False, 1.0)  # more than 3 ping intervals (0.3 s)
    late = listener.times("WATCHDOG", dead)
    assert len(late) <= 1, late  # at most one that raced the health check
    assert "withholding the systemd watchdog ping" in caplog.text

    del folder.tick  # the class's tick again: it finds the dead observer and restarts it
    listener.wait("WATCHDOG", "1", after=len(listener.messages), timeout=5)
    assert "the observer of" in caplog.text and "restarting it" in caplog.text
    assert "healthy again" in caplog.text
    dropped = folder.root / "after-restart.png"
    make_png(dropped)
    assert wait_for(lambda: sidecar_of(dropped), 10)


def test_reload_waiting_on_a_down_api_keeps_the_watchdog_fed(inprocess, listener, emulator):
    """SIGHUP's key check is retried while the API answers 503; the daemon is not wedged, so
    WATCHDOG=1 goes on during the retries, and READY=1 follows once the API is back."""
    daemon = inprocess()
    listener.wait("READY", "1")
    emulator.set_faults(error_rate=1.0, scope=["api"])
    mark = len(listener.messages)
    daemon.request_reload()
    reloading = listener.wait("RELOADING", "1", after=mark)
    assert wait_for(lambda: emulator.stats()["faults_injected"], 5)
    listener.pump(lambda: len(listener.times("WATCHDOG", reloading)) >= 3, 5)
    assert [] == listener.times("READY", reloading)  # still checking the key
    assert 3 <= len(listener.times("WATCHDOG", reloading))
    emulator.set_faults(error_rate=0.0)
    listener.wait("READY", "1", after=reloading)


def test_long_rescan_keeps_the_watchdog_fed(inprocess, listener, tmp_path):
    """A rescan slower than WatchdogSec (a big tree on a slow NAS) pings from inside the scan,
    so systemd does not restart a daemon that is merely busy listing files."""
    daemon = inprocess()
    listener.wait("READY", "1")
    folder = daemon.folders[0]
    sample = tmp_path / "sample.png"
    make_png(sample)
    st = sample.stat()

    span: list[float] = []  # wall-clock start and end, like the kernel's message stamps

    def slow_scan(top=None):  # a tree that takes 2 s to list; WatchdogSec is 0.6 s
        span.append(time.time())
        i = 0
        while time.time() < span[0] + 2.0:
            time.sleep(0.001)
            i += 1
            yield folder.root / f"gone{i}.png", st
        span.append(time.time())

    folder.scan = slow_scan
    folder.rescan_soon()
    daemon.wake()  # the main loop picks the rescan up at once
    assert wait_for(lambda: len(span) == 2, 30)
    listener.pump(lambda: False, 0.05)
    during = [t for t in listener.times("WATCHDOG") if span[0] < t < span[1]]
    # The main loop is inside the scan all along: only the scan itself can have pinged
    # (about 7 times, at 0.3 s; without it, none).
    assert 3 <= len(during), (span, during)


# -- mount safety, on one Folder with a hand-driven clock -------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def folder_at(tmp_path) -> Iterator[Callable[..., tuple[Folder, _Clock, list[str]]]]:
    """A watched Folder on a path, its clock, and the list its rescans append to."""
    made: list[Folder] = []

    def make(root: Path) -> tuple[Folder, _Clock, list[str]]:
        clock = _Clock()
        settings = FolderSettings(settle_seconds=0.2, poll_interval=1.0, rescan_interval=0)
        folder = Folder(FolderConfig(root, True, settings, None),
                        on_candidate=lambda *a: None, on_dir=lambda *a: None,
                        is_own_output=lambda p: False, clock=clock)
        made.append(folder)
        folder.start_watching()
        list(folder.scan())
        return folder, clock, []

    yield make
    for folder in made:
        folder.stop_watching()


def _tick(folder: Folder, clock: _Clock, rescans: list[str]) -> None:
    clock.now += 1.5  # past the mount check interval (min(5 s, poll_interval))
    folder.tick(clock.now, lambda: rescans.append("rescan"))


def test_missing_folder_pauses_once_and_resumes_with_a_rescan(tmp_path, folder_at, caplog):
    """A folder renamed away pauses with one warning however often it is checked, and
    resumes by itself, with one rescan, when it is back."""
    hot = tmp_path / "hot"
    hot.mkdir()
    make_png(hot / "a.png")
    folder, clock, rescans = folder_at(hot)
    hot.rename(tmp_path / "away")
    for _ in range(3):
        _tick(folder, clock, rescans)
    assert "unavailable" == folder.state
    assert folder.healthy()  # a reported pause, not a hang: no watchdog restart for it
    assert 1 == caplog.text.count("pausing this folder")
    assert [] == list(folder.scan())
    (tmp_path / "away").rename(hot)
    _tick(folder, clock, rescans)
    _tick(folder, clock, rescans)
    assert ("watching", ["rescan"]) == (folder.state, rescans)


def test_deleted_folder_stops_its_emitter_and_reads_as_a_pause(tmp_path, folder_at, caplog):
    """inotify's emitter ends when its folder is deleted; that is a pause (one warning), not a
    dead observer to restart with errors."""
    hot = tmp_path / "hot"
    hot.mkdir()
    folder, clock, rescans = folder_at(hot)
    watcher = folder._watcher  # noqa: SLF001
    shutil.rmtree(hot)
    assert wait_for(lambda: not watcher.is_alive(), 5)
    folder.tick(clock.now, lambda: rescans.append("rescan"))  # before the mount check is due
    assert "unavailable" == folder.state
    assert "ERROR" not in [r.levelname for r in caplog.records]


def test_emptied_local_folder_keeps_watching(tmp_path, folder_at):
    """Moving every file out of a local folder is normal work, not a lost mount."""
    hot = tmp_path / "hot"
    hot.mkdir()
    make_png(hot / "a.png")
    folder, clock, rescans = folder_at(hot)
    (hot / "a.png").unlink()
    _tick(folder, clock, rescans)
    assert "watching" == folder.state


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root")
def test_unmounted_share_pauses_and_remounted_share_resumes(tmp_path, folder_at, caplog):
    """A share unmounted under the daemon leaves an empty mount point on another device:
    "suddenly empty where it had files" pauses the folder; mounting it again resumes it."""
    hot = tmp_path / "hot"
    hot.mkdir()

    def mount() -> None:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(hot)],
                              check=False, capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        make_png(hot / "a.png")

    def umount() -> None:
        subprocess.run(["umount", "-l", str(hot)], check=False, capture_output=True)

    mount()
    try:
        folder, clock, rescans = folder_at(hot)
        umount()
        _tick(folder, clock, rescans)
        assert "unavailable" == folder.state
        assert "suddenly empty" in caplog.text
        mount()
        _tick(folder, clock, rescans)
        _tick(folder, clock, rescans)
        assert ("watching", ["rescan"]) == (folder.state, rescans)
    finally:
        umount()


# -- the dedicated user ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_file_creates_the_service_user(tmp_path):
    """systemd-sysusers accepts runwatchd.sysusers.conf and creates the User= of the unit,
    with the unit's StateDirectory as its home."""
    conf = Path(__file__).resolve().parent.parent / "systemd" / "runwatchd.sysusers.conf"
    (tmp_path / "etc" / "sysusers.d").mkdir(parents=True)
    for name in ("passwd", "group"):
        (tmp_path / "etc" / name).touch()
    shutil.copy(conf, tmp_path / "etc" / "sysusers.d" / "runwatchd.conf")
    done = subprocess.run(["systemd-sysusers", "--dry-run", f"--root={tmp_path}"],
                          check=False, capture_output=True, text=True)
    assert 0 == done.returncode, done.stderr
    assert "Creating user 'runwatchd'" in done.stdout + done.stderr
    unit = (conf.parent / "runwatchd.service").read_text()
    assert "User=runwatchd" in unit and "StateDirectory=runwatchd" in unit
    user_line = next(line for line in conf.read_text().splitlines() if line.startswith("u "))
    assert "/var/lib/runwatchd" in user_line
