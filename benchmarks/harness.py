"""Shared harness: the emulator process, measured subprocesses, files, configs, the result rows.

Every contender runs as its own subprocess and is measured the same way: wall time from spawn,
CPU seconds (user + system, threads and children included) and peak RSS sampled every 10 ms over
its process tree (and checked against the kernel's own ru_maxrss when it exits). The emulator
runs in another process, so its CPU and memory never count against anyone.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
CONTENDERS = BENCH / "contenders"
PY = sys.executable
SECRET = "emulator-key"
MIB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- dependencies and machine ------------------------------------------------------------------


def ensure_bench_deps() -> None:
    """Install the `bench` extra of pyproject.toml (runwayml, psutil, py-spy) if anything is missing."""
    wanted = {"runwayml": "runwayml", "psutil": "psutil", "py_spy": None}
    missing = [m for m, mod in wanted.items() if mod and importlib.util.find_spec(mod) is None]
    if shutil.which("py-spy", path=str(Path(PY).parent)) is None and not shutil.which("py-spy"):
        missing.append("py-spy")
    if not missing:
        return
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["bench"]
    log(f"installing the bench extra ({', '.join(extra)}) for: {', '.join(missing)}")
    subprocess.run([PY, "-m", "pip", "install", "-q", *extra], check=True)
    importlib.invalidate_caches()


def py_spy() -> str | None:
    here = Path(PY).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def machine_info() -> dict[str, str]:
    import psutil

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    disk = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        fs = subprocess.run(["df", "--output=fstype", tempfile_dir()], capture_output=True,
                            text=True, check=False).stdout.split()
        disk = fs[-1]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "tmp_fs": disk,
    }


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


# -- the emulator ------------------------------------------------------------------------------


class EmulatorProc:
    """`benchmarks/emulator_proc.py` in a subprocess, driven over its /_emulator/ endpoints."""

    def __init__(self) -> None:
        import httpx

        self.proc = subprocess.Popen(
            [PY, str(BENCH / "emulator_proc.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=ROOT, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError("the emulator did not start")
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def faults(self, **faults: object) -> None:
        self.http.post("/_emulator/faults", json=faults).raise_for_status()

    def reset(self) -> None:
        """Forget uploads and counters, no faults (between contenders)."""
        self.http.post("/_emulator/reset", json={"full": True}).raise_for_status()

    def stats(self) -> dict:
        return self.http.get("/_emulator/stats").json()

    def objects(self) -> dict[str, dict]:
        return self.http.get("/_emulator/objects").json()

    def api_calls(self) -> int:
        return int(self.stats()["api_calls_total"])

    def slot(self, filename: str) -> dict:
        r = self.http.post("/v1/uploads", json={"filename": filename, "type": "ephemeral"},
                           headers={"Authorization": f"Bearer {SECRET}",
                                    "X-Runway-Version": "2024-11-06"})
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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

    def _reaped(self, status: int, usage: os.struct_rusage) -> Measured:  # type: ignore[name-defined]
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


def contender_env(emulator: EmulatorProc, home: Path, **extra: str) -> dict[str, str]:
    """The environment every contender gets: the official SDK's variable names, an empty HOME
    (so no user config is picked up), no colour, nothing of the harness's own NOTIFY_SOCKET."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNWAYML_", "RUNWATCHD_", "NOTIFY_SOCKET", "STATE_DIRECTORY",
                                "CREDENTIALS_DIRECTORY", "WATCHDOG_"))}
    env.update(RUNWAYML_API_SECRET=SECRET, RUNWAYML_BASE_URL=emulator.url, HOME=str(home),
               NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def runwatchd_cmd(*args: str) -> list[str]:
    return [PY, "-m", "runwatchd", *args]


def write_config(path: Path, *, state_dir: Path, folders: Iterable[dict],
                 concurrency: int | None = None, defaults: dict | None = None) -> Path:
    import tomli_w

    runway: dict = {"state_dir": str(state_dir)}
    if concurrency is not None:
        runway["concurrency"] = concurrency
    doc: dict = {"runway": runway, "folder": list(folders)}
    if defaults:
        doc["defaults"] = defaults
    path.write_text(tomli_w.dumps(doc))
    return path


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


# -- files -------------------------------------------------------------------------------------

_BLOCK = random.Random(1234).randbytes(4 * MIB)


def write_media(path: Path, size: int, salt: str) -> str:
    """A file of `size` bytes whose content is unique to `salt`; returns its sha256."""
    h = hashlib.sha256()
    head = hashlib.sha256(salt.encode()).digest() * 2
    with open(path, "wb") as f:
        left = size
        first = True
        while left > 0:
            chunk = (head + _BLOCK)[: min(left, len(_BLOCK))] if first else _BLOCK[:left]
            first = False
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def drop_sidecars(paths: Iterable[Path]) -> None:
    for p in paths:
        Path(f"{p}.runway.json").unlink(missing_ok=True)


def wait_until(cond: Callable[[], bool], timeout: float, interval: float = 0.02) -> float | None:
    """Monotonic time at which `cond()` first held, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


# -- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    contender: str
    wall: str = ""
    cpu: str = ""
    rss: str = ""
    figure: str = ""
    ratio: str = ""
    target: str = ""


@dataclass
class CaseResult:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    emulator: EmulatorProc
    workdir: Path
    quick: bool
    profile: bool
    profile_dir: Path


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:.0f} s"


def fmt_mb(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / MIB:.0f} MiB"


def fmt_x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def verdict(ok: bool, text: str) -> str:
    return f"{'met' if ok else 'MISSED'}: {text}"


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
