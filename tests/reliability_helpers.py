"""What the reliability tests share: files, the wire and the logs observed, daemons run in a
thread or as the real CLI, and checks that the secret went nowhere."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from daemon_helpers import harness

from runwatchd import fsutil
from runwatchd.config import load as configmod
from runwatchd.daemon.core import Daemon
from runwatchd.daemon.in_thread import DaemonThread
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient
from runwatchd.store.sqlite import SqliteStore

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[1]
RULE = {"endpoint": "image_to_video", "output_dir": "renders",
        "request": {"model": "gen4.5", "promptText": "{stem} comes to life", "ratio": "1280:720",
                    "duration": 5}}
FINAL_TASK = ("SUCCEEDED", "FAILED", "CANCELLED", "NEEDS_ATTENTION")


def new_secret() -> str:
    return "key_" + secrets.token_hex(24)


# -- files ---------------------------------------------------------------------------------------

def write_media(path: Path, size: int, rng: random.Random) -> str:
    """Random bytes (the emulator checks sizes and extensions, not pixels); returns the sha256."""
    data = rng.randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return sha_of(path), st.st_size, st.st_mtime_ns


def temp_files(root: Path) -> list[Path]:
    return [Path(d) / n for d, _, names in os.walk(root) for n in names if fsutil.TEMP_MARK in n]


def sidecar_problems(path: Path) -> list[str]:
    """Why `path`'s sidecar is not a valid, matching description of its current bytes."""
    where = sidecar.sidecar_path(path)
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"{path.name}: no readable sidecar ({e})"]
    problems = [f"{path.name}: {p}" for p in sidecar.validate_sidecar(data)]
    if problems:
        return problems
    if not sidecar.sidecar_matches(data, os.stat(path), path.name):
        problems.append(f"{path.name}: sidecar does not match the file's name/size/mtime")
    if data["file"]["sha256"] != sha_of(path):
        problems.append(f"{path.name}: sidecar sha256 is not the file's content")
    return problems


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# -- observing the wire and the logs -------------------------------------------------------------

@dataclass
class Sent:
    """One HTTP request as the client's transport saw it."""

    start: float
    end: float
    thread: int
    method: str
    path: str
    filename: str | None
    outcome: str  # status code, or the exception class name
    failed: bool


class RecordingTransport(httpx.BaseTransport):
    """The real transport, recording every request; `before` hooks act on a slot request for a
    given filename (e.g. delete the file while its upload starts)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[Sent] = []
        self.before: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        filename = None
        if request.url.path == "/v1/uploads":
            filename = json.loads(request.read()).get("filename")
            hook = self.before.pop(filename, None) if filename else None
            if hook is not None:
                hook()
        start = time.monotonic()
        try:
            resp = self.inner.handle_request(request)
        except Exception as e:
            self._add(Sent(start, time.monotonic(), threading.get_ident(), request.method,
                           request.url.path, filename, type(e).__name__, True))
            raise
        end = time.monotonic()
        failed = resp.status_code >= 400
        if not failed and request.url.path.startswith("/v1/"):
            try:  # an injected garbled reply is a failure the client must retry
                json.loads(resp.read())
            except ValueError:
                failed = True
            except httpx.HTTPError:
                failed = True
        self._add(Sent(start, end, threading.get_ident(), request.method, request.url.path,
                       filename, str(resp.status_code), failed))
        return resp

    def _add(self, item: Sent) -> None:
        with self._lock:
            self.sent.append(item)

    def close(self) -> None:
        self.inner.close()

    def names_sent(self) -> set[str]:
        return {s.filename for s in self.sent if s.filename}

    def peak_per_second(self) -> int:
        buckets = Counter(int(s.start) for s in self.sent)
        return max(buckets.values(), default=0)


class LogCapture(logging.Handler):
    """Every record at every level, formatted with its traceback, for greps and counts."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._lock2:
            self.records.append(record)
            self.lines.append(text)

    def text(self) -> str:
        with self._lock2:
            return "\n".join(self.lines)

    def messages(self, level: int = logging.DEBUG, contains: str = "") -> list[str]:
        with self._lock2:
            return [r.getMessage() for r in self.records
                    if r.levelno >= level and contains in r.getMessage()]


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    """Root and every library logger at DEBUG (httpx and httpcore included) into one capture."""
    handler = LogCapture()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore", "watchdog")}
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# -- running the daemon --------------------------------------------------------------------------

def make_config(base: Path, folder: Path, *, rule: dict | None = None, settle: float = 0.2,
                concurrency: int = 4, rescan: float = 0.0, extra: dict | None = None
                ) -> configmod.Config:
    entry: dict[str, Any] = {"path": str(folder)}
    if rule:
        entry["rule"] = rule
    data = {"runway": {"concurrency": concurrency, "state_dir": str(base / "state")},
            "defaults": {"settle_seconds": settle, "rescan_interval": rescan},
            "daemon": {"grace_seconds": 10}, "folder": [entry], **(extra or {})}
    return configmod.parse_config(data, "test")


@dataclass
class Running:
    daemon: Daemon
    journal: SqliteStore
    thread: DaemonThread


@contextmanager
def daemon_thread(cfg: configmod.Config, client: RunwayClient, state_dir: Path,
                  poll_interval: float = 0.2, **kwargs: Any) -> Iterator[Running]:
    """A started Daemon in a thread (no signal handlers); stopped and joined on exit."""
    with harness(state_dir) as h:
        daemon = h.daemon(cfg, client=client, poll_interval=poll_interval, **kwargs)
        yield Running(daemon, daemon.journal, h.launch(daemon))


def write_toml_config(path: Path, base: Path, folder: Path, *, rule: dict | None = None,
                      settle: float = 0.2, rescan: float = 2.0, secret_file: Path | None = None
                      ) -> Path:
    import tomli_w

    entry: dict[str, Any] = {"path": str(folder)}
    if rule:
        entry["rule"] = rule
    runway: dict[str, Any] = {"concurrency": 4, "state_dir": str(base / "state")}
    if secret_file:
        runway["api_secret_file"] = str(secret_file)
    doc = {"runway": runway, "defaults": {"settle_seconds": settle, "rescan_interval": rescan},
           "daemon": {"grace_seconds": 10}, "folder": [entry]}
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def cli_env(emu_url: str, secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNWAYML_", "RUNWATCHD_", "NOTIFY_", "WATCHDOG_"))
           and k not in ("JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")}
    env["RUNWAYML_BASE_URL"] = emu_url
    if secret is not None:
        env["RUNWAYML_API_SECRET"] = secret
    env["PYTHONPATH"] = str(REPO)
    return env


def start_cli_daemon(config: Path, env: dict[str, str], log: Path,
                     poll: float = 0.2) -> subprocess.Popen[bytes]:
    """The real CLI daemon, with the task follower's poll interval shortened (Runway asks for
    5 s; the emulator's tasks last a fraction of a second; honoured on a loopback URL only)."""
    env = {**env, "RUNWATCHD_TASK_POLL_SECONDS": str(poll)}
    out = open(log, "ab")  # noqa: SIM115 - the child owns the descriptor; closed below
    try:
        return subprocess.Popen([PYTHON, "-m", "runwatchd", "-v", "run", "-c", str(config)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)
    finally:
        out.close()


def stop_cli_daemon(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise


def run_cli(args: list[str], env: dict[str, str],
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "runwatchd", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_no_secret(secret: str, where: str, blob: bytes | str) -> None:
    raw = blob if isinstance(blob, bytes) else blob.encode("utf-8", "surrogateescape")
    assert secret.encode() not in raw, f"the API secret leaked into {where}"


def state_files(state_dir: Path) -> list[Path]:
    """The journal (with its -wal/-shm), status.json and anything else the daemon keeps."""
    return [p for p in state_dir.rglob("*") if p.is_file()]


# == 1. network faults ===========================================================================
