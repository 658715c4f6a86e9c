"""What the service tests share: the daemon as a real process with NOTIFY_SOCKET on the
test's own datagram socket, and fixtures for that socket and those processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import wait_for

from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar

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
