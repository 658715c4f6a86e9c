"""Shared harness: the emulator process, contender environments and configs, test files, and
the result rows. Measuring a process (CPU, peak RSS, notify socket, profiles) is in measure.py;
its names are re-exported here, so a case needs only `import harness as h`.

The emulator runs in its own process, so its CPU and memory never count against a contender.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import random
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from measure import (  # noqa: F401 - re-exported for the cases
    Measured,
    NotifySocket,
    Watched,
    log,
    profiled,
    py_spy,
    run_measured,
    summarize_profile,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
CONTENDERS = BENCH / "contenders"
PY = sys.executable
SECRET = "emulator-key"
MIB = 1024 * 1024


# -- dependencies and machine ------------------------------------------------------------------


def ensure_bench_deps() -> None:
    """Install the `bench` extra of pyproject.toml (runwayml, psutil, py-spy) if any is missing."""
    missing = [m for m in ("runwayml", "psutil") if importlib.util.find_spec(m) is None]
    if py_spy() is None:
        missing.append("py-spy")
    if not missing:
        return
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["bench"]
    log(f"installing the bench extra ({', '.join(extra)}) for: {', '.join(missing)}")
    subprocess.run([PY, "-m", "pip", "install", "-q", *extra], check=True)
    importlib.invalidate_caches()


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
        "runwayml": _version("runwayml"),
        "runwatchd": _runwatchd_source(),
        "curl": subprocess.run(["curl", "--version"], capture_output=True, text=True,
                               check=False).stdout.split(" ")[1],
    }


def _runwatchd_source() -> str:
    """Which runwatchd was measured: the package imported (PYTHONPATH may point at a snapshot)
    and the repository's commit, marked when the work tree differs from it."""
    import runwatchd

    where = Path(runwatchd.__file__).resolve().parent.parent
    rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False).stdout.strip() or "?"
    return rev if where == ROOT else f"{rev} (a copy of the work tree)"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


# -- the emulator ------------------------------------------------------------------------------


class EmulatorProc:
    """`benchmarks/emulator_proc.py` in a subprocess, driven over its /_emulator/ endpoints."""

    def __init__(self, *args: str) -> None:
        """`args`: emulator_proc.py's options (e.g. "--max-concurrent-tasks", "1000")."""
        import httpx

        self.proc = subprocess.Popen(
            [PY, str(BENCH / "emulator_proc.py"), *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, cwd=ROOT, text=True)
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
                 concurrency: int | None = None, defaults: dict | None = None,
                 store: dict | None = None) -> Path:
    import tomli_w

    runway: dict = {"state_dir": str(state_dir)}
    if concurrency is not None:
        runway["concurrency"] = concurrency
    doc: dict = {"runway": runway, "folder": list(folders)}
    if defaults:
        doc["defaults"] = defaults
    if store:
        doc["store"] = store
    path.write_text(tomli_w.dumps(doc))
    return path


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


def flush_writes() -> None:
    """Write dirty pages out now: background writeback of files just made would otherwise slow
    whichever contender happens to run first."""
    os.sync()


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


