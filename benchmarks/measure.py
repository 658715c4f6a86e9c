"""Measuring contenders: subprocesses with their CPU and peak RSS, a stand-in systemd notify
socket, and py-spy profiles.

Every contender runs as its own subprocess and is measured the same way: wall time from spawn,
CPU seconds (user + system, threads and children included) and peak RSS read from the kernel's
high-water mark of its process tree every 10 ms.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def py_spy() -> str | None:
    here = Path(PY).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


# -- measured subprocesses ---------------------------------------------------------------------


@dataclass
class Measured:
    wall: float
    cpu: float
    peak_rss: int
    rc: int | None


class Watched:
    """A contender subprocess, measured while it runs.

    `cpu()` can be read at any moment (for daemons measured up to an event); `finish()` reaps
    the process with wait4 so its own rusage (every thread, reaped children) closes the account.
    stdout lines go to `on_line(t, line)` with their monotonic time; stderr goes to `log_path`.
    """

    def __init__(self, cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path,
                 on_line: Callable[[float, str], None] | None = None) -> None:
        import psutil

        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in finish()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if on_line else subprocess.DEVNULL, stderr=self._log,
            text=bool(on_line), start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self.end: float | None = None
        self._children: list = []
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._reader = None
        if on_line:
            self._reader = threading.Thread(target=self._read, args=(on_line,), daemon=True)
            self._reader.start()

    def _read(self, on_line: Callable[[float, str], None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            on_line(time.monotonic(), line.rstrip("\n"))

    def _sample(self) -> None:
        """Peak RSS of the tree: the kernel's high-water mark (VmHWM) of each process, read every
        10 ms, so a peak between two samples is not missed. (ru_maxrss from wait4 is no use: it
        keeps the harness's own size from before the fork.)"""
        import psutil

        n = 0
        while not self._done.is_set():
            try:
                if n % 50 == 0:
                    self._children = self.ps.children(recursive=True)
                total = _hwm(self.proc.pid)
                if total is None:
                    return
                for child in self._children:
                    total += _hwm(child.pid) or 0
                self.peak_rss = max(self.peak_rss, total)
            except psutil.Error:
                return
            n += 1
            self._done.wait(0.01)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def cpu(self) -> float:
        """CPU seconds so far: every thread of the process, plus children it has reaped."""
        t = self.ps.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def wait(self, timeout: float) -> Measured:
        """Wait for the process to exit by itself (killing it after `timeout`)."""
        deadline = time.monotonic() + timeout
        # Never Popen.poll(): it would reap the child and its rusage with it.
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                return self._reaped(status, usage)
            time.sleep(0.005)
        log(f"timeout: killing {' '.join(self.cmd[:4])}")
        return self.stop(sig=signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> Measured:
        """End a daemon; wall and CPU are whatever the caller recorded before, RSS is the peak."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        deadline = time.monotonic() + grace
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                return self._reaped(status, usage)
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.01)

    def _reaped(self, status: int, usage: resource.struct_rusage) -> Measured:
        self.end = time.monotonic()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._done.set()
        self._sampler.join()
        if self._reader:
            self._reader.join(5)
        self._log.close()
        cpu = usage.ru_utime + usage.ru_stime
        return Measured(self.end - self.t0, cpu, self.peak_rss, self.proc.returncode)


def _hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None  # a zombie has no memory left to report


def run_measured(cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path,
                 timeout: float, on_line: Callable[[float, str], None] | None = None) -> Measured:
    m = Watched(cmd, env=env, cwd=cwd, log_path=log_path, on_line=on_line).wait(timeout)
    if m.rc != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        log(f"{cmd[:4]} exited {m.rc}; stderr tail:\n{tail}")
    return m


class NotifySocket:
    """A stand-in for systemd's notify socket: records every sd_notify datagram with its time."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), data.decode(errors="replace")))
                self._cond.notify_all()

    def wait_for(self, line: str, timeout: float) -> float | None:
        """Monotonic time of the first datagram holding `line`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, text in self.messages:
                    if line in text.splitlines():
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


# -- profiles ----------------------------------------------------------------------------------


def profiled(cmd: list[str], raw_out: Path, rate: int = 250) -> list[str]:
    """`cmd` under py-spy, collapsed stacks of every thread that is not idle to `raw_out`. A
    thread blocked in a socket or fsync call counts as busy, so this is where wall time goes."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install '.[bench]')")
    return [spy, "record", "--format", "raw", "--rate", str(rate), "--nonblocking", "-o",
            str(raw_out), "--", *cmd]


def summarize_profile(raw: Path, top: int = 12) -> str:
    """Top functions by own samples and runwatchd functions by inclusive samples, as text."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            if "runwatchd/" in f:
                incl[f] = incl.get(f, 0) + n
    out = [f"{total} samples", "own time:"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / max(total, 1):5.1f}%  {name}")
    out.append("inclusive, runwatchd code:")
    for name, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / max(total, 1):5.1f}%  {name}")
    return "\n".join(out)


def _frame_name(frame: str) -> str:
    """"func (path/to/mod.py:123)" -> "func (mod.py)", with runwatchd paths kept readable."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    if "runwatchd/" in where:
        where = "runwatchd/" + where.split("runwatchd/")[-1]
    else:
        where = where.rsplit("/", 1)[-1]
    return f"{name} ({where})"
