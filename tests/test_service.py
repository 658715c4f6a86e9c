"""runwatchd as a systemd service, proved through the running daemon.

The daemon runs as `python -m runwatchd run` with NOTIFY_SOCKET on a datagram socket of the
test's own, against an in-process emulator; the key comes from a credentials directory
(RUNWAYML_API_SECRET unset), like systemd's LoadCredential= provides it. A few tests run the
Daemon in a thread instead, where they must reach into it (to kill an observer).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_helpers import harness
from helpers import wait_for

from runwatchd.cli import daemon_commands as cli_daemon
from runwatchd.cli.demo import make_png
from runwatchd.config.load import FolderConfig, FolderSettings, load_config, parse_config
from runwatchd.daemon.core import Daemon
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy
from runwatchd.service.notify import Notifier
from runwatchd.store.sqlite import SqliteStore
from runwatchd.watch.folders import Folder

SECRET = "svc-test-key-0123"
# The env a test daemon must not inherit from whoever runs the tests.
_SCRUB = ("RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL", "RUNWATCHD_CONFIG", "NOTIFY_SOCKET",
          "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY",
          "STATE_DIRECTORY")


# Linux's value on x86 and arm; the socket module does not export it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class NotifyListener:
    """An AF_UNIX datagram socket standing in for systemd's notification socket.

    Messages are stamped by the kernel on arrival (SO_TIMESTAMPNS), so a test process that is
    slow to read (two cores shared by many) cannot make two pings look simultaneous.
    """

    def __init__(self) -> None:
        # sun_path holds 107 bytes: pytest's tmp_path can be longer than that.
        self._dir = tempfile.mkdtemp(prefix="rw-notify-")
        self.path = os.path.join(self._dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # then the time of reading stands in
        self.messages: list[tuple[float, dict[str, str]]] = []

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        """Receive messages until `until()` holds or `timeout` passes; returns `until()`."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return until()
            self.sock.settimeout(min(left, 0.05))
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, 64)
            except TimeoutError:
                continue
            stamp = time.time()
            for level, kind, raw in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS) and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    stamp = sec + nsec / 1e9
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append((stamp, fields))
        return True

    def wait(self, key: str, value: str | None = None, *, after: int = 0,
             timeout: float = 20.0) -> int:
        """Index of the first message from `after` on with key (=value); fails on timeout."""

        def found() -> int | None:
            for i, (_t, fields) in enumerate(self.messages[after:], after):
                if key in fields and (value is None or value in fields[key]):
                    return i
            return None

        assert self.pump(lambda: found() is not None, timeout), (
            f"no {key}={value or '*'} after message {after}: {self.messages[after:][-5:]}")
        index = found()
        assert index is not None
        return index

    def times(self, key: str, start: int = 0, stop: int | None = None) -> list[float]:
        return [t for t, fields in self.messages[start:stop] if key in fields]


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    """The test's notification socket."""
    sock = NotifyListener()
    yield sock
    sock.close()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An emulator that accepts only SECRET."""
    with Emulator(api_secret=SECRET, task_seconds=0.3) as emu:
        yield emu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`runwatchd run` in a subprocess, set up as systemd would start it."""

    def __init__(self, tmp: Path, emu: Emulator, listener: NotifyListener | None, *,
                 secret: str = SECRET, daemon_toml: str = "", watchdog_usec: int | None = None,
                 journal_stream: bool = False, args: tuple[str, ...] = ()) -> None:
        self.hot = tmp / "hot"
        self.hot.mkdir(exist_ok=True)
        self.state = tmp / "state"
        creds = tmp / "credentials"
        creds.mkdir(exist_ok=True)
        (creds / "runway_api_secret").write_text(secret + "\n")
        (creds / "runway_api_secret").chmod(0o400)  # as systemd lays credentials out
        self.config = tmp / "runwatchd.toml"
        self.config.write_text(
            f'[runway]\nstate_dir = "{self.state}"\nconcurrency = 2\n'
            f"[daemon]\ngrace_seconds = 5\n{daemon_toml}\n"
            f'[[folder]]\npath = "{self.hot}"\nsettle_seconds = 0.3\npoll_interval = 0.5\n'
            "rescan_interval = 0\n")
        self.stderr_path = tmp / "stderr.log"
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update(RUNWAYML_BASE_URL=emu.url, CREDENTIALS_DIRECTORY=str(creds), NO_COLOR="1")
        if listener is not None:
            env["NOTIFY_SOCKET"] = listener.path
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        with open(self.stderr_path, "wb") as err:
            if journal_stream:
                st = os.fstat(err.fileno())
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runwatchd", *args, "run", "-c", str(self.config)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> bool:
        return bool(wait_for(lambda: text in self.log() or self.proc.poll() is not None,
                             timeout, 0.05)) and text in self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Every Service a test starts is killed at its end, whatever happened."""
    started: list[Service] = []
    yield started
    for svc in started:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()


def sidecar_of(path: Path) -> dict | None:
    return sidecar.read_sidecar(path)


# -- sd_notify through the running daemon --------------------------------------------------


def test_notify_lifecycle_of_the_running_daemon(tmp_path, emulator, listener, services):
    """READY=1 after the catch-up scan, STATUS= with live counts, WATCHDOG=1 every half
    WatchdogSec and never before READY, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on
    SIGTERM and exit 0; under journald every stderr line carries a priority prefix."""
    usec = 1_000_000  # pings every 0.5 s; systemd would act after 1.0 s without one
    (tmp_path / "hot").mkdir()
    make_png(tmp_path / "hot" / "before.png")
    svc = Service(tmp_path, emulator, listener, watchdog_usec=usec, journal_stream=True)
    services.append(svc)

    ready = listener.wait("READY", "1")
    # The file found by the catch-up scan is already counted when READY=1 goes out.
    assert "1 waiting" in listener.messages[ready][1]["STATUS"]
    assert [] == listener.times("WATCHDOG", 0, ready)
    listener.wait("STATUS", "1 uploaded", after=ready)
    listener.pump(lambda: len(listener.times("WATCHDOG", ready)) >= 6, 10)

    pings = listener.times("WATCHDOG", ready)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 6 <= len(pings)
    assert max(gaps) < usec / 1e6, gaps  # never late enough for systemd to restart it
    assert min(gaps) > 0.4, gaps  # and not spammed: one per interval (0.5 s)

    mark = len(listener.messages)
    svc.proc.send_signal(signal.SIGHUP)
    reloading = listener.wait("RELOADING", "1", after=mark)
    assert "MONOTONIC_USEC" in listener.messages[reloading][1]
    listener.wait("READY", "1", after=reloading + 1)

    mark = len(listener.messages)
    svc.proc.send_signal(signal.SIGTERM)
    stopping = listener.wait("STOPPING", "1", after=mark)
    assert 0 == svc.stop()
    listener.pump(lambda: False, 0.1)
    assert [] == listener.times("WATCHDOG", stopping + 1)

    lines = svc.log().splitlines()
    assert lines
    assert [] == [line for line in lines if not re.match(r"<[0-7]>", line)]
    assert any(line.startswith("<6>INFO runwatchd.daemon.core: ready") for line in lines)
    assert SECRET not in svc.log()


def test_secret_comes_from_the_credentials_directory(tmp_path, emulator, listener, services):
    """With RUNWAYML_API_SECRET unset the key is $CREDENTIALS_DIRECTORY/runway_api_secret:
    the right one passes the emulator's key check (READY=1), a wrong one exits 78 unread."""
    (tmp_path / "wrong").mkdir()
    wrong = Service(tmp_path / "wrong", emulator, listener, secret="not-the-key-42")
    services.append(wrong)
    assert 78 == wrong.proc.wait(30)
    assert "rejected" in wrong.log()
    assert "not-the-key-42" not in wrong.log()

    right = Service(tmp_path, emulator, listener)
    services.append(right)
    listener.wait("READY", "1")
    assert 0 == right.stop()
    assert SECRET not in right.log()


def test_metrics_endpoint_counts_the_daemon_work(tmp_path, emulator, services):
    """[daemon] metrics serves Prometheus text: uploads and bytes, an invalid file, a retried
    upload (expired slot), journal states; [daemon] log_format = "json" gives JSON lines."""
    port = free_port()
    emulator.set_faults(expire_next_slots=1)
    (tmp_path / "hot").mkdir()
    good = tmp_path / "hot" / "good.png"
    make_png(good)
    (tmp_path / "hot" / "tiny.png").write_bytes(b"\x89PNG" + b"\0" * 96)
    svc = Service(tmp_path, emulator, None,
                  daemon_toml=f'metrics = "127.0.0.1:{port}"\nlog_format = "json"')
    services.append(svc)

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def value(text: str, series: str) -> float | None:
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else None

    expected = {
        'runwatchd_uploads_total{result="succeeded"}': 1.0,
        "runwatchd_upload_bytes_total": float(good.stat().st_size),
        'runwatchd_uploads_total{result="failed"}': 1.0,
        'runwatchd_failures_total{reason="invalid_file"}': 1.0,
        'runwatchd_retries_total{operation="upload"}': 1.0,
        'runwatchd_files{state="uploaded"}': 1.0,
        'runwatchd_files{state="invalid"}': 1.0,
        "runwatchd_uploads_in_flight": 0.0,
    }
    text = wait_for(lambda: (t := scrape()) and all(
        value(t, s) == v for s, v in expected.items()) and t, 20, 0.2)
    assert text, scrape()
    assert {s: v for s, v in expected.items()} == {s: value(text, s) for s in expected}
    assert value(text, "process_resident_memory_bytes")
    assert 0 == svc.stop()

    records = [json.loads(line) for line in svc.log().splitlines()]
    assert any(r["msg"].startswith("uploaded ") for r in records)
    assert {"ts", "level", "logger", "msg"} <= set(records[0])


def test_busy_metrics_port_costs_the_metrics_not_the_daemon(caplog):
    """A taken metrics port is one error line and no metrics; the daemon still starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = parse_config({"daemon": {"metrics": f"127.0.0.1:{port}"}}, "test")
        assert cli_daemon._start_metrics(cfg) is None  # noqa: SLF001
    assert f"metrics: cannot listen on 127.0.0.1:{port}" in caplog.text


# -- a watched folder's directory disappears and comes back -----------------------------------


def test_watched_folder_removed_and_restored_while_running(tmp_path, emulator, listener,
                                                           services):
    """Renaming the watched folder away pauses it with one warning and marks nothing gone;
    renaming it back resumes by itself: a file added meanwhile and one dropped afterwards are
    uploaded, the file done before is not uploaded again."""
    (tmp_path / "hot").mkdir()
    first = tmp_path / "hot" / "first.png"
    make_png(first, seed=1)
    svc = Service(tmp_path, emulator, listener, watchdog_usec=1_000_000)
    services.append(svc)
    assert wait_for(lambda: sidecar_of(first), 20)
    uri_before = sidecar_of(first)["runway_uri"]

    away = tmp_path / "hot.away"
    svc.hot.rename(away)
    assert svc.wait_log("pausing this folder until it is back")
    listener.wait("STATUS", "unavailable")
    make_png(away / "meanwhile.png", seed=2)  # the share got a file while out of sight
    pause = len(listener.messages)
    listener.pump(lambda: len(listener.times("WATCHDOG", pause)) >= 2, 10)
    assert 2 <= len(listener.times("WATCHDOG", pause))  # paused, yet alive for systemd

    away.rename(svc.hot)
    assert svc.wait_log("is available; resuming with a rescan")
    after = svc.hot / "after.png"
    make_png(after, seed=3)
    assert wait_for(lambda: sidecar_of(svc.hot / "meanwhile.png") and sidecar_of(after), 20)
    assert 0 == svc.stop()

    assert uri_before == sidecar_of(svc.hot / "first.png")["runway_uri"]
    assert 3 == len(emulator.objects())
    journal = SqliteStore(svc.state / "journal.sqlite3")
    try:
        assert {"uploaded": 3} == journal.counts()
    finally:
        journal.close()
    noisy = [line for line in svc.log().splitlines() if re.search(r"WARNING|ERROR", line)]
    assert 2 == len(noisy), noisy  # the pause and the resume, nothing else
    assert 1 == svc.log().count("pausing this folder")


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
