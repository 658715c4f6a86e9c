"""The Emulator object: owns the server thread, the storage, the task board, faults and counters.

Tests, the demo and the benchmarks embed it (`with Emulator() as emu: ... emu.url`); the CLI's
`runwatchd emulator` runs `serve_forever`. Nothing here is global, so several emulators can run
side by side in one process.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from .bodies import ENDPOINTS, cost_of, created_reply, models, runway_uris, validate
from .faults import FaultConfig, FaultInjector
from .listener import EmulatorServer
from .server import Handler
from .state import ApiError, Counters
from .storage import Storage
from .tasks import TaskBoard

log = logging.getLogger(__name__)

MIN_SIZE = 512
MAX_SIZE = 200 * 1024 * 1024
DEFAULT_SECRET = "emulator-key"


class Emulator:
    """A Runway API look-alike over real sockets, in a background thread.

    Times (slot_ttl, uri_ttl, task lifecycle) follow `clock`, so tests can move time by hand.
    `pending_seconds` defaults to a quarter of `task_seconds` (at most 1 s) so PENDING is seen.
    Uploaded files go to `storage_dir` (default: a temporary directory removed by stop());
    `keep_files=False` only hashes them, for benchmarks that push many large files.
    `emulator.storage.objects()` gives every StoredObject with its path and created_at.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_secret: str = DEFAULT_SECRET,
        storage_dir: Path | None = None,
        faults: FaultConfig | dict[str, Any] | None = None,
        task_seconds: float = 2.0,
        pending_seconds: float | None = None,
        max_concurrent_tasks: int = 4,
        outputs_per_task: int = 1,
        fail_marker: str = "FAIL:",
        fail_prompts: tuple[str, ...] | list[str] = (),
        credits: int = 100_000,  # noqa: A002  (Runway's word; the builtin is REPL-only)
        min_size: int = MIN_SIZE,
        max_size: int = MAX_SIZE,
        slot_ttl: float = 3600.0,
        uri_ttl: float = 86400.0,
        keep_files: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (
            task_seconds < 0
            or max_concurrent_tasks < 1
            or outputs_per_task < 1
            or not 0 < min_size <= max_size
        ):
            raise ValueError(
                "emulator: task_seconds >= 0, max_concurrent_tasks >= 1, outputs_per_task >= 1 "
                "and 0 < min_size <= max_size are required"
            )
        if not api_secret:
            raise ValueError("emulator: api_secret must not be empty")
        self.host, self.port = host, port
        self.api_secret = api_secret
        self.initial_credits = credits
        self._credits = credits
        self._credits_lock = threading.Lock()
        cfg = faults if isinstance(faults, FaultConfig) else FaultConfig.from_mapping(faults)
        self.faults = FaultInjector(cfg)
        self.counters = Counters()
        self._storage_dir = storage_dir
        self.storage = Storage(
            Path(),
            min_size=min_size,
            max_size=max_size,
            slot_ttl=slot_ttl,
            uri_ttl=uri_ttl,
            clock=clock,
            keep_files=keep_files,
        )
        if pending_seconds is None:
            pending_seconds = min(1.0, task_seconds / 4)
        self.tasks = TaskBoard(
            clock,
            task_seconds=task_seconds,
            pending_seconds=pending_seconds,
            max_concurrent=max_concurrent_tasks,
            outputs_per_task=outputs_per_task,
            fail_marker=fail_marker,
            fail_prompts=tuple(fail_prompts),
        )
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind, then serve in a daemon thread; returns self so `Emulator().start()` chains."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        if self._storage_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="runwatchd-emulator-")
            self.storage.directory = Path(self._tmp.name)
        else:
            self._storage_dir.mkdir(parents=True, exist_ok=True)
            self.storage.directory = self._storage_dir
        try:
            self._server = EmulatorServer((self.host, self.port), self, Handler)
        except BaseException:
            self._cleanup_tmp()
            raise
        self.port = self._server.server_address[1]
        shown = (
            "127.0.0.1"
            if self.host in ("", "0.0.0.0")
            else "[::1]"
            if self.host == "::"
            else self.host
        )
        shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
        self._url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.run, name="runwatchd-emulator", daemon=True
        )
        self._thread.start()
        log.debug("emulator listening on %s", self._url)
        return self

    def stop(self) -> None:
        """Stop serving, end every connection (idle keep-alives too), join threads, clean up."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop_accepting()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        server.close_connections(timeout=5.0)
        server.server_close()
        self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:40123" (what RUNWAYML_BASE_URL should be)."""
        if self._url is None:
            raise RuntimeError("emulator not started")
        return self._url

    # -- introspection -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Every counter (see state.py), faults injected by kind, tasks by status, credits."""
        out = self.counters.snapshot()
        out["faults_injected"] = self.faults.snapshot()
        out["tasks_by_status"] = self.tasks.counts()
        out["credit_balance"] = self.credit_balance
        out["faults"] = self.faults.current()
        return out

    def objects(self) -> dict[str, dict[str, Any]]:
        """runway_uri -> {"filename", "size", "sha256"} of every completed upload."""
        return {uri: obj.public() for uri, obj in self.storage.objects().items()}

    def set_faults(self, **faults: Any) -> None:
        """Change some fault keys live (others kept); ValueError on unknown keys or bad values."""
        self.faults.update(**faults)

    def reset(self, *, full: bool = False) -> None:
        """Clear counters and faults; `full` also forgets uploads and tasks and refills credits."""
        self.faults.reset()
        self.counters.reset()
        self.tasks.reset(forget=full)
        if full:
            self.storage.clear()
            with self._credits_lock:
                self._credits = self.initial_credits

    @property
    def credit_balance(self) -> int:
        with self._credits_lock:
            return self._credits

    # -- API operations (called by the HTTP handler) -------------------------------------------

    def organization(self) -> dict[str, Any]:
        """GET /v1/organization: credits, tier limits and today's usage, Runway's shape."""
        concurrency = self.tasks.max_concurrent
        daily = self.tasks.daily_by_model()
        return {
            "creditBalance": self.credit_balance,
            "tier": {
                "maxMonthlyCreditSpend": 1_000_000,
                "models": {
                    m: {"maxConcurrentGenerations": concurrency, "maxDailyGenerations": 10_000}
                    for m in models()
                },
            },
            "usage": {"models": {m: {"dailyGenerations": n} for m, n in daily.items()}},
        }

    def create_upload(self, body: object, base_url: str) -> dict[str, object]:
        """POST /v1/uploads: a presigned slot (born expired when a fault says so)."""
        reply = self.storage.create_slot(
            body, base_url, born_expired=self.faults.slot_born_expired()
        )
        self.counters.add("uploads_created")
        return reply

    def generate(self, endpoint: str, body: Any) -> dict[str, Any]:
        """POST /v1/<endpoint>: validate, charge, queue."""
        if endpoint not in ENDPOINTS:
            raise ApiError(404, "Not found")
        problems = validate(endpoint, body, lambda uri: self.storage.lookup(uri) is not None)
        if problems:
            raise ApiError(400, "Validation of body failed", problems)
        cost = cost_of(endpoint, body)
        with self._credits_lock:
            if self.faults.no_credits() or self._credits < cost:
                raise ApiError(400, "You do not have enough credits to run this task.")
            self._credits -= cost
        uris = [uri for _, uri in runway_uris(body)]
        task = self.tasks.create(endpoint, body, uris)
        self.counters.add("tasks_created")
        self.counters.task_inputs(uris)
        return created_reply(endpoint, body, task.id, cost)

    def cancel(self, task_id: str) -> None:
        """DELETE /v1/tasks/{id}; a task cancelled before it ran is refunded."""
        task = self.tasks.cancel(task_id)
        if task is None:
            raise ApiError(404, "Task not found")
        if task.cancelled and not task.deleted:
            self.counters.add("tasks_cancelled")
            if task.refunded:
                with self._credits_lock:
                    self._credits += task.cost


def serve_forever(
    host: str,
    port: int,
    api_secret: str,
    faults: dict[str, Any] | None = None,
    task_seconds: float = 2.0,
    storage_dir: Path | None = None,
    key_label: str | None = None,
) -> None:
    """Run an emulator in the foreground until Ctrl-C or SIGTERM (`runwatchd emulator`).

    `key_label` is shown instead of the key: a key taken from $RUNWAYML_API_SECRET may be a
    real Runway secret, which must never be printed."""
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_term)
    emulator = Emulator(
        host=host,
        port=port,
        api_secret=api_secret,
        faults=faults,
        task_seconds=task_seconds,
        storage_dir=storage_dir,
    )
    try:
        with emulator:
            # A key given on the command line is no secret: printed so the user can set up a client.
            print(
                f"runwatchd emulator listening on {emulator.url} "
                f"(API key: {key_label or api_secret})",
                flush=True,
            )
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
