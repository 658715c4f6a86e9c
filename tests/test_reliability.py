"""Reliability: runwatchd loses nothing, bills nothing twice and leaks nothing (short form).

The scenarios here run at full size in tests/test_soak.py (`pytest -m soak -s tests/test_soak.py`):
    fault_run   network faults from the emulator while files arrive; every file ends with a
                correct sidecar, no stored object has wrong bytes, every retry is logged, backoff
                and Retry-After are honoured (no busy loop)
    crash_run   the real CLI daemon is SIGKILLed at random moments during a run with a
                generation rule; after the last restart every file has one valid sidecar, no
                generation was submitted twice, no temp file remains, no source file changed
Credentials (revoked key, no credits) and secret redaction are tested here too; odd and hostile
input is in test_hostile_input.py.
"""

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
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from daemon_helpers import harness
from helpers import wait_for

from runwatchd import errors, fsutil
from runwatchd.config import load as configmod
from runwatchd.daemon.core import Daemon
from runwatchd.daemon.in_thread import DaemonThread
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RetryPolicy, RunwayClient
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

FAULTS = {
    "error_rate": 0.2, "error_status": 503,          # 20 % 5xx
    "rate_limit_every": 29, "rate_limit_burst": 6,   # 429s now and then, and a burst at once
    "retry_after": 0.4,                              # ... with Retry-After
    "drop_rate": 0.04,                               # connections dropped (mid-body on uploads)
    "drop_after_rate": 0.02,                         # dropped after the work was done
    "slow_rate": 0.02, "slow_seconds": 2.0,          # slower than the client's timeout
    "bad_json_rate": 0.03,                           # garbled JSON
    "expire_next_slots": 4,                          # upload slots that are already expired
}
FAULT_KINDS = ("error", "rate_limit", "drop", "drop_after", "slow", "bad_json", "expired_slot")
CLIENT_TIMEOUT = 1.2


def fault_run(base: Path, n_files: int, *, seed: int, deadline: float) -> dict[str, Any]:
    """Upload `n_files` (half present at start, half arriving) through every network fault;
    assert the end state and return the figures."""
    rng = random.Random(seed)
    folder = base / "hot"
    folder.mkdir(parents=True)
    secret = new_secret()
    shas: dict[str, str] = {}
    sizes = [rng.choice((512, 2048, 9000, 40_000, 70_000, 130_000)) for _ in range(n_files)]
    names = [f"clip{i:04d}.png" for i in range(n_files)]
    for name, size in zip(names[: n_files // 2], sizes):
        shas[name] = write_media(folder / name, size, rng)
    retries: list[tuple[int, str, BaseException, float]] = []
    slept: list[float] = []

    def on_retry(what: str, error: BaseException, delay: float) -> None:
        retries.append((threading.get_ident(), what, error, delay))

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    transport = RecordingTransport()
    started = time.monotonic()
    faults = {**FAULTS, "seed": seed}
    with capture_logs() as logs, Emulator(api_secret=secret, faults=faults) as emu:
        client = RunwayClient(secret, emu.url, transport=transport, timeout=CLIENT_TIMEOUT,
                              retry=RetryPolicy(max_attempts=20, initial_delay=0.05,
                                                max_delay=1.0, deadline=120),
                              sleep=sleep, on_retry=on_retry)
        cfg = make_config(base, folder)
        with client, daemon_thread(cfg, client, base / "state") as run:
            for i, (name, size) in enumerate(zip(names[n_files // 2:], sizes[n_files // 2:])):
                shas[name] = write_media(folder / name, size, rng)
                if i == n_files // 4:
                    emu.set_faults(rate_limit_burst=6)  # a second burst, mid-run
                time.sleep(rng.uniform(0, 0.02))
            done = wait_for(lambda: all(sidecar.sidecar_path(folder / n).exists() for n in names),
                            timeout=deadline, interval=0.1)
            missing = [n for n in names if not sidecar.sidecar_path(folder / n).exists()]
            assert done, f"no sidecar after {deadline:.0f} s for {len(missing)}: {missing[:5]}"
            journal_states = Counter(r.state for r in run.journal)
        stats = emu.stats()
        objects = emu.objects()
    elapsed = time.monotonic() - started

    # 300 correct sidecars: each one describes the file's bytes, and the URI holds those bytes.
    problems = [p for n in names for p in sidecar_problems(folder / n)]
    assert [] == problems
    for name in names:
        uri = read_json(sidecar.sidecar_path(folder / name))["runway_uri"]
        assert (name, shas[name]) == (objects[uri]["filename"], objects[uri]["sha256"])
    assert {"uploaded": n_files} == dict(journal_states)
    # No object stored with wrong bytes: orphans of replies lost in transit included.
    wrong = [o for o in objects.values() if o["sha256"] != shas.get(o["filename"])]
    assert [] == wrong
    # Every retry logged: each failed request ended one attempt, and each such attempt left a
    # "retrying ..." warning (none was given up on, with 20 attempts).
    # The daemon's credit balance check (one GET, no retries, on a short-lived thread whose id
    # a worker may get later) is not part of the uploads' traffic.
    sent = [s for s in transport.sent if s.path != "/v1/organization"]
    failed = [s for s in sent if s.failed]
    retry_lines = logs.messages(logging.WARNING, "retrying upload of")
    gave_up = logs.messages(logging.ERROR, "upload failed")
    assert (len(failed), len(failed), 0) == (len(retries), len(retry_lines), len(gave_up))
    # Backoff honoured: every 429 was waited out for at least its Retry-After, on the wire too.
    limited = [r for r in retries if isinstance(r[2], errors.RateLimited)]
    assert all(delay >= FAULTS["retry_after"] for _, _, _, delay in limited)
    by_thread: dict[int, list[Sent]] = defaultdict(list)
    for s in sorted(sent, key=lambda s: s.start):
        by_thread[s.thread].append(s)
    gaps = []
    for seq in by_thread.values():
        for s, nxt in zip(seq, seq[1:]):
            if s.outcome == "429":
                gaps.append(nxt.start - s.end)
    assert gaps and min(gaps) >= FAULTS["retry_after"] * 0.99, f"429 retried too early: {gaps}"
    # No busy loop: requests are bounded by files and failures, and their rate stays modest.
    assert len(sent) <= 2 * (n_files + len(failed)) + 2
    injected = {k: v for k, v in stats["faults_injected"].items() if k != "delay"}
    assert set(FAULT_KINDS) <= set(injected), f"not every fault was exercised: {injected}"
    # An expired slot can come in a reply that is garbled anyway: it then fails nothing itself.
    all_failed = sum(1 for s in transport.sent if s.failed)  # the balance check's included
    assert sum(injected.values()) - injected["expired_slot"] <= all_failed
    assert_no_secret(secret, "the logs", logs.text())
    for path in state_files(base / "state") + list(folder.glob("*" + sidecar.SUFFIX)):
        assert_no_secret(secret, path.name, path.read_bytes())
    return {
        "files": n_files, "seconds": round(elapsed, 1), "requests": len(transport.sent),
        "failed_requests": len(failed), "retries_logged": len(retry_lines),
        "faults_injected": dict(sorted(injected.items())),
        "peak_requests_per_second": transport.peak_per_second(),
        "min_wait_after_429": round(min(gaps), 3), "seconds_slept_in_backoff": round(sum(slept), 1),
        "orphan_objects": len(objects) - n_files, "uploads_completed": stats["uploads_completed"],
    }


def test_network_faults_lose_nothing(tmp_path: Path) -> None:
    """60 files through 5xx, 429 bursts, drops, timeouts, bad JSON and expired slots: all arrive."""
    figures = fault_run(tmp_path, 60, seed=7, deadline=45)
    assert 60 == figures["files"]


# == 2. crashes ==================================================================================

def crash_run(base: Path, n_files: int, kills: int, *, seed: int, deadline: float
              ) -> dict[str, Any]:
    """SIGKILL the real daemon `kills` times while files arrive and generations run; assert the
    end state after the last restart and return the figures."""
    rng = random.Random(seed)
    folder = base / "hot"
    folder.mkdir(parents=True)
    secret = new_secret()
    names = [f"shot{i:04d}.png" for i in range(n_files)]
    sizes = [rng.choice((600, 3000, 20_000, 90_000)) for _ in names]
    before: dict[str, tuple[str, int, int]] = {}
    first = n_files // 3
    for name, size in zip(names[:first], sizes):
        write_media(folder / name, size, rng)
        before[name] = fingerprint(folder / name)
    config = write_toml_config(base / "runwatchd.toml", base, folder, rule=RULE, settle=0.2,
                               rescan=2.0)
    log = base / "daemon.log"
    stopped_writing = threading.Event()
    kill_times: list[float] = []
    started = time.monotonic()

    def writer() -> None:
        wrng = random.Random(seed + 1)
        for name, size in zip(names[first:], sizes[first:]):
            write_media(folder / name, size, wrng)
            before[name] = fingerprint(folder / name)
            time.sleep(wrng.uniform(0.0, 0.08))
        stopped_writing.set()

    with Emulator(api_secret=secret, task_seconds=0.4, max_concurrent_tasks=16) as emu:
        env = cli_env(emu.url, secret)
        feeder = threading.Thread(target=writer, name="test-writer")
        feeder.start()
        try:
            for _ in range(kills):
                proc = start_cli_daemon(config, env, log)
                time.sleep(rng.uniform(0.4, 2.2))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kill_times.append(round(time.monotonic() - started, 2))
        finally:
            feeder.join(60)
        readies = log.read_text(errors="replace").count("ready: watching")
        proc = start_cli_daemon(config, env, log)
        try:
            assert wait_for(lambda: log.read_text(errors="replace").count("ready: watching")
                            > readies, timeout=20, interval=0.05)

            def finished() -> bool:
                for name in names:
                    data = read_json(sidecar.sidecar_path(folder / name))
                    if not data or (data.get("task") or {}).get("status") not in FINAL_TASK:
                        return False
                return True

            done = wait_for(finished, timeout=deadline, interval=0.2)
            status_out = run_cli(["status", "-c", str(config)], env)
        finally:
            code = stop_cli_daemon(proc)
        stats = emu.stats()
        objects = emu.objects()
    elapsed = time.monotonic() - started
    log_text = log.read_text(encoding="utf-8", errors="replace")
    assert done, "not every file reached a final task status; log tail:\n" + log_text[-3000:]
    assert 0 == code

    # Each file: exactly one valid sidecar describing its bytes; no sidecar for anything else.
    assert [] == [p for n in names for p in sidecar_problems(folder / n)]
    sidecars = sorted(p.name for p in base.rglob("*" + sidecar.SUFFIX))
    assert sorted(n + sidecar.SUFFIX for n in names) == sidecars
    # No generation submitted twice: tasks counted per source file across all its uploads.
    tasks_per_file: Counter[str] = Counter()
    for uri, count in stats["tasks_per_input_uri"].items():
        tasks_per_file[objects[uri]["filename"]] += count
    assert [] == [n for n, c in tasks_per_file.items() if c > 1]
    statuses = Counter(read_json(sidecar.sidecar_path(folder / n))["task"]["status"]
                       for n in names)
    # A kill while a worker's POST is under way leaves "needs attention" (never a resubmit);
    # each of the 4 workers can be in that window when a kill comes.
    assert statuses["NEEDS_ATTENTION"] <= kills * 4
    assert n_files - statuses["NEEDS_ATTENTION"] <= stats["tasks_created"] <= n_files
    for name in names:
        data = read_json(sidecar.sidecar_path(folder / name))
        if data["task"]["status"] == "SUCCEEDED":
            outputs = [folder / o for o in data["task"]["outputs"]]
            assert outputs and all(o.stat().st_size > 0 for o in outputs)
    # No temp file left anywhere; no source file changed.
    assert [] == temp_files(base)
    assert before == {n: fingerprint(folder / n) for n in names}
    assert_no_secret(secret, "the daemon's log", log_text)
    assert_no_secret(secret, "`runwatchd status`", status_out.stdout + status_out.stderr)
    for path in state_files(base / "state") + list(folder.rglob("*" + sidecar.SUFFIX)):
        assert_no_secret(secret, path.name, path.read_bytes())
    assert "Traceback" not in log_text
    return {
        "files": n_files, "kills": kills, "kill_times_s": kill_times,
        "seconds": round(elapsed, 1), "tasks_created": stats["tasks_created"],
        "max_tasks_per_file": max(tasks_per_file.values(), default=0),
        "statuses": dict(statuses), "uploads_completed": stats["uploads_completed"],
        "extra_uploads": stats["uploads_completed"] - n_files,
    }


def test_sigkill_loses_nothing_and_bills_once(tmp_path: Path) -> None:
    """3 SIGKILLs during a 60-file run with a rule: one valid sidecar each, no double billing."""
    figures = crash_run(tmp_path, 60, 3, seed=11, deadline=45)
    assert 1 >= figures["max_tasks_per_file"]


# == 4. credentials ==============================================================================

def test_revoked_key_pauses_then_sighup_resumes_and_no_credits_pauses_generation(
        tmp_path: Path) -> None:
    """A 401 mid-run pauses all work with one error until SIGHUP brings a new key; 'not enough
    credits' pauses generation only (uploads go on) until a reload after credits are back."""
    rng = random.Random(5)
    folder = tmp_path / "hot"
    folder.mkdir()
    old_key, new_key = new_secret(), new_secret()
    key_file = tmp_path / "secret"
    key_file.write_text(old_key + "\n", encoding="utf-8")
    config = write_toml_config(tmp_path / "runwatchd.toml", tmp_path, folder, rule=RULE,
                               settle=0.2, rescan=0, secret_file=key_file)
    log = tmp_path / "daemon.log"

    def drop(prefix: str, n: int) -> list[Path]:
        paths = [folder / f"{prefix}{i}.png" for i in range(n)]
        for p in paths:
            write_media(p, 3000, rng)
        return paths

    def status_of(paths: list[Path]) -> list[str | None]:
        out = []
        for p in paths:
            data = read_json(sidecar.sidecar_path(p))
            out.append(None if data is None else (data.get("task") or {}).get("status", "none"))
        return out

    def log_text() -> str:
        return log.read_text(encoding="utf-8", errors="replace")

    with Emulator(api_secret=old_key, task_seconds=0.3) as emu:
        env = cli_env(emu.url, None)
        proc = start_cli_daemon(config, env, log)
        try:
            assert wait_for(lambda: "ready: watching" in log_text(), timeout=20)
            first = drop("before", 4)
            assert wait_for(lambda: status_of(first) == ["SUCCEEDED"] * 4, timeout=20)
            # The key is revoked: every call now answers 401.
            emu.api_secret = new_key
            second = drop("revoked", 4)
            assert wait_for(lambda: "all work is paused" in log_text(), timeout=10)
            paused = wait_for(lambda: "PAUSED: your API key was rejected" in run_cli(
                ["status", "-c", str(config)], env).stdout, timeout=10, interval=0.3)
            assert paused
            failures = emu.stats()["auth_failures"]
            time.sleep(1.0)  # paused means quiet: no request keeps hitting the API
            assert failures == emu.stats()["auth_failures"] <= 8
            assert [None] * 4 == status_of(second)
            paused_status = run_cli(["status", "-c", str(config)], env)
            # A new key in the secret file, then SIGHUP: everything resumes.
            key_file.write_text(new_key + "\n", encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda: status_of(second) == ["SUCCEEDED"] * 4, timeout=20)
            # No credits: uploads go on, generation waits.
            emu.set_faults(no_credits=True)
            third = drop("broke", 4)
            assert wait_for(lambda: None not in status_of(third)
                            and "generation paused" in log_text(), timeout=20)
            generate = "POST /v1/image_to_video"
            tries = sum(emu.stats()["requests"][generate].values())
            time.sleep(1.0)
            assert tries == sum(emu.stats()["requests"][generate].values())
            assert ["none"] * 4 == status_of(third)  # uploaded, sidecar without a task yet
            # Credits are back; a reload resubmits what waited.
            emu.set_faults(no_credits=False)
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda: status_of(third) == ["SUCCEEDED"] * 4, timeout=20)
        finally:
            code = stop_cli_daemon(proc)
        stats = emu.stats()
        objects = emu.objects()
    text = log_text()
    assert 0 == code
    rejected = [line for line in text.splitlines() if "ERROR" in line and "rejected" in line]
    assert 1 == len(rejected), rejected
    assert "check RUNWAYML_API_SECRET or api_secret_file" in rejected[0]
    credit_lines = [line for line in text.splitlines() if "generation paused" in line]
    assert 1 <= len(credit_lines) <= 4 and "enough credits" in credit_lines[0]
    assert "PAUSED: your API key was rejected" in paused_status.stdout
    tasks_per_file: Counter[str] = Counter()
    for uri, count in stats["tasks_per_input_uri"].items():
        tasks_per_file[objects[uri]["filename"]] += count
    assert {p.name: 1 for p in first + second + third} == dict(tasks_per_file)
    for key in (old_key, new_key):
        assert_no_secret(key, "the daemon's log", text)
        assert_no_secret(key, "`runwatchd status`", paused_status.stdout + paused_status.stderr)
        for path in state_files(tmp_path / "state"):
            assert_no_secret(key, path.name, path.read_bytes())
        for path in folder.rglob("*" + sidecar.SUFFIX):
            assert_no_secret(key, path.name, path.read_bytes())


# == 5. secrets ==================================================================================

def test_secret_never_in_errors_logs_status_or_journal(tmp_path: Path) -> None:
    """Every error kind the client raises, its chain and its request, the logs at DEBUG, the
    sidecar, the journal (with -wal) and `runwatchd status` never contain the secret."""
    secret = new_secret()
    clip = tmp_path / "hot" / "clip.png"
    write_media(clip, 4000, random.Random(1))
    seen: list[BaseException] = []
    faults = [
        ({"error_rate": 1.0, "error_status": 500}, "upload"),
        ({"rate_limit_every": 1, "retry_after": 0}, "upload"),
        ({"drop_rate": 1.0}, "upload"),
        ({"slow_rate": 1.0, "slow_seconds": 1.0}, "upload"),
        ({"bad_json_rate": 1.0}, "upload"),
        ({"expire_slots": True}, "upload"),
        ({"drop_after_rate": 1.0, "scope": ["tasks"]}, "task"),
        ({"no_credits": True}, "task"),
        ({}, "bad_task"),
        ({}, "get_task"),
    ]
    headers_seen = 0
    with capture_logs() as logs, Emulator(api_secret=secret, task_seconds=0.2) as emu:
        with RunwayClient(secret, emu.url, timeout=0.5,
                          retry=RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)
                          ) as client:
            uri = client.upload(clip).runway_uri
            for fault, action in faults:
                emu.faults.reset()
                emu.set_faults(**fault)
                try:
                    if action == "upload":
                        client.upload(clip)
                    elif action == "task":
                        client.create_task("image_to_video", {
                            "model": "gen4.5", "promptImage": uri, "promptText": "a shot",
                            "ratio": "1280:720", "duration": 5})
                    elif action == "bad_task":
                        client.create_task("image_to_video", {"model": "gen4.5"})
                    else:
                        client.get_task("no-such-task")
                except errors.RunwatchdError as e:
                    seen.append(e)
            emu.faults.reset()
        with RunwayClient("wrong-" + secret, emu.url) as wrong:
            try:
                wrong.check_key()
            except errors.KeyRejected as e:
                seen.append(e)
            assert secret not in repr(wrong)
        kinds = {type(e).__name__ for e in seen}
        assert {"ServerError", "RateLimited", "NetworkError", "SlotExpired", "SubmitUncertain",
                "NoCredits", "InputRejected", "KeyRejected"} <= kinds
        for e in seen:
            text = "".join(traceback.format_exception(e)) + repr(e) + str(e)
            chain, cause = [e], e.__cause__ or e.__context__
            while cause is not None and cause not in chain:
                chain.append(cause)
                text += repr(cause) + str(cause) + repr(vars(cause))
                request = getattr(cause, "_request", None)
                if request is not None:  # httpx keeps the request, headers and all
                    text += repr(list(request.headers.items()))
                    headers_seen += "authorization" in request.headers
                cause = cause.__cause__ or cause.__context__
            assert_no_secret(secret, f"a {type(e).__name__}", text)
        assert headers_seen  # the chained requests' Authorization headers were looked at
        # A daemon run with a rule, then its traces: logs, sidecar, journal, status.
        cfg = make_config(tmp_path, clip.parent, rule=RULE, settle=0.1)
        with RunwayClient(secret, emu.url) as client, daemon_thread(cfg, client,
                                                                    tmp_path / "state"):
            assert wait_for(lambda: (read_json(sidecar.sidecar_path(clip)) or {}).get(
                "task", {}).get("status") == "SUCCEEDED", timeout=20)
        env = cli_env(emu.url, secret)
        status = run_cli(["status", "--json", "-c", str(write_toml_config(
            tmp_path / "runwatchd.toml", tmp_path, clip.parent))], env)
        status_text = run_cli(["status", "-c", str(tmp_path / "runwatchd.toml")], env)
    # 3: the daemon has stopped by now (LSB "not running"); the report is there all the same.
    assert 3 == status.returncode and "files" in json.loads(status.stdout)
    assert_no_secret(secret, "the logs", logs.text())
    assert_no_secret(secret, "`runwatchd status`", status.stdout + status.stderr
                     + status_text.stdout + status_text.stderr)
    assert_no_secret(secret, "the sidecar", sidecar.sidecar_path(clip).read_bytes())
    stored = state_files(tmp_path / "state")
    assert any(p.name.endswith(".sqlite3") for p in stored)
    for path in stored:
        assert_no_secret(secret, path.name, path.read_bytes())
