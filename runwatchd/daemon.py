"""Wiring and lifecycle: observers and scans feed one candidate table; settled files go to workers.

    startup()    check the key, start observers, catch-up scan, READY=1
    main_loop()  settle -> dispatch (at most `concurrency` in flight), rescans, retries, health
    shutdown()   stop taking files, let in-flight uploads finish within the grace period, STOPPING=1

Signals only set flags (`request_stop`, `request_reload`); the CLI installs the handlers, so a
test can run a Daemon in a thread without touching the process's signals.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from runwatchd import fsutil, sidecar
from runwatchd.client import RunwayClient
from runwatchd.config import Config
from runwatchd.errors import KeyRejected
from runwatchd.folders import Folder
from runwatchd.journal import Journal
from runwatchd.notify import WatchdogPinger
from runwatchd.pipeline import ATTENTION, FAILED, INVALID, RETRY, Job, Processor
from runwatchd.settle import CandidateTable
from runwatchd.status import STATUS_FILE
from runwatchd.tasks import TaskFollower
from runwatchd.watch import install_overflow_hook

log = logging.getLogger(__name__)

# Files whose journal row is in one of these states, unchanged, need nothing at a scan.
_SETTLED_STATES = ("uploaded", "succeeded", "task_failed", "attention", "invalid", "running",
                   "submitting")


class Daemon:
    """The hot-folder daemon. `mode="scan"` processes what exists and returns when all is done."""

    def __init__(
        self,
        config: Config,
        client: RunwayClient,
        journal: Journal,
        *,
        state_dir: Path,
        mode: str = "run",
        notifier=None,
        metrics=None,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 5.0,
        client_factory: Callable[[Config], RunwayClient] | None = None,
        config_loader: Callable[[], Config] | None = None,
        scan_tops: dict[Path, Path] | None = None,
        only: set[Path] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.journal = journal
        self.state_dir = state_dir
        self.mode = mode
        self.notifier = notifier
        self.metrics = metrics
        self.clock = clock
        self.client_factory = client_factory
        self.config_loader = config_loader
        self.scan_tops = scan_tops or {}
        self.only = only
        self.table = CandidateTable(clock=clock)
        self.follower = TaskFollower(
            client, journal, poll_interval=poll_interval, on_key_rejected=self._key_rejected,
            on_output=self._own_output, on_finished=self._task_finished,
        )
        self.processor = Processor(client, journal, follow=self.follower.follow)
        self.folders: list[Folder] = []
        self.outcomes: Counter[str] = Counter()
        self.failed_paths: dict[str, str] = {}
        self._own_outputs: set[Path] = set()
        self._ready: deque[tuple[Path, Folder]] = deque()
        self._new_dirs: deque[tuple[Folder, Path]] = deque()
        self._in_flight: dict[Path, Future] = {}
        self._retry_heap: list[tuple[float, str]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._paused: str | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(config.runway.concurrency, thread_name_prefix="runwatchd-up")
        self._uninstall_overflow: Callable[[], None] | None = None
        self._last_progress = clock()
        self._last_status_write = 0.0
        self._pinger = WatchdogPinger(notifier, self.healthy) if notifier is not None else None

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """startup, main loop, shutdown; returns the exit code (scan: 1 if any file failed)."""
        self.startup()
        try:
            self.main_loop()
        finally:
            self.shutdown()
        if self.mode == "scan" and (self.outcomes[FAILED] or self.outcomes[INVALID]
                                    or self.outcomes[ATTENTION] or self.outcomes["task_failed"]
                                    or self._paused):
            return 1
        return 0

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    def startup(self) -> None:
        for d in (self.state_dir,):
            d.mkdir(parents=True, exist_ok=True)
        self._uninstall_overflow = install_overflow_hook(self._overflowed)
        self._recover_journal()
        self.follower.start()
        self.folders = [self._make_folder(fc) for fc in self.config.folders]
        for folder in self.folders:
            if self.mode == "run":
                folder.start_watching()
            self._scan(folder, "catch-up")
        if self.notifier:
            self.notifier.ready(self._status_line())
        log.info("ready: watching %d folder(s), %d file(s) waiting to settle",
                 len(self.folders), len(self.table))

    def main_loop(self) -> None:
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            for path, _sig in self.table.pop_ready():
                folder = self._folder_for(path)
                if folder is not None:
                    log.info("settled %s", path)
                    self._ready.append((path, folder))
            while self._new_dirs:
                folder, directory = self._new_dirs.popleft()
                self._scan(folder, "new directory", top=directory)
            self._due_retries()
            self._dispatch()
            now = self.clock()
            for folder in self.folders:
                folder.tick(now, rescan=lambda f=folder: self._scan(f, "periodic"))
            self._heartbeat()
            if self.mode == "scan" and self._idle():
                break
            self._wake.wait(self._sleep_time())
            self._wake.clear()

    def shutdown(self) -> None:
        if self.notifier:
            self.notifier.stopping()
        for folder in self.folders:
            folder.stop_watching()
        grace = self.config.daemon.grace_seconds
        deadline = time.monotonic() + grace
        pending = list(self._in_flight.values())
        if pending:
            log.info("waiting up to %.0f s for %d upload(s) in flight", grace, len(pending))
        for fut in pending:
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a timeout or failure is reported below
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.follower.stop()
        if self._uninstall_overflow:
            self._uninstall_overflow()
        self._write_status(final=True)
        o = self.outcomes
        log.info("shutdown ◆ %d uploaded ◆ %d submitted ◆ %d skipped ◆ %d failed ◆ %d invalid "
                 "◆ %d still waiting", o["uploaded"], o["submitted"], o["skipped"], o[FAILED],
                 o[INVALID], len(self.table) + len(self._ready))

    # -- scanning and events -------------------------------------------------------------------

    def _make_folder(self, fc) -> Folder:
        return Folder(fc, on_candidate=self._candidate, on_dir=self._dir_appeared,
                      is_own_output=self._is_own_output, clock=self.clock)

    def _candidate(self, path: Path, folder: Folder, closed: bool = False) -> None:
        if path in self._own_outputs or path in self._in_flight:
            return
        self.table.touch(path, folder.settings.settle_seconds, closed=closed)
        self._wake.set()

    def _dir_appeared(self, folder: Folder, directory: Path) -> None:
        # Called on the observer thread: scanning here would hold up every other event.
        self._new_dirs.append((folder, directory))
        self._wake.set()

    def _overflowed(self) -> None:
        log.warning("inotify queue overflowed: rescanning every folder")
        for folder in self.folders:
            folder.rescan_soon()
        self._wake.set()

    def _scan(self, folder: Folder, why: str, top: Path | None = None) -> None:
        known = self.journal.signatures()
        found = queued = 0
        for path, st in folder.scan(top or self.scan_tops.get(folder.root)):
            if self.only is not None and path not in self.only:
                continue
            found += 1
            row = known.get(str(path))
            if row and row[0] in _SETTLED_STATES and row[1:] == (st.st_size, st.st_mtime_ns,
                                                                  st.st_ino):
                if row[0] in ("invalid", "running", "submitting") or os.path.exists(
                        sidecar.sidecar_path(path)):
                    continue
            queued += 1
            self._candidate(path, folder)
        log.info("%s scan of %s: %d file(s), %d to look at", why, folder.root, found, queued)

    def _folder_for(self, path: Path) -> Folder | None:
        best = None
        for folder in self.folders:
            if folder.contains(path) and (best is None or len(folder.root.parts) > len(
                    best.root.parts)):
                best = folder
        return best

    def _own_output(self, path: Path) -> None:
        self._own_outputs.add(path)

    def _is_own_output(self, path: Path) -> bool:
        return path in self._own_outputs

    # -- work ----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while self._ready and not self._paused and len(self._in_flight) < self.config.runway.concurrency:
            path, folder = self._ready.popleft()
            if path in self._in_flight:
                continue
            job = Job(path=path, root=folder.root, resolver=folder.resolver)
            fut = self._pool.submit(self._work, job, folder)
            self._in_flight[path] = fut

    def _work(self, job: Job, folder: Folder) -> None:
        try:
            outcome = self.processor.process(job)
        except KeyRejected as e:
            self._key_rejected(e)
            outcome = "paused"
            with self._lock:
                self._ready.appendleft((job.path, folder))
        except Exception as e:  # a bug must cost one file, not the daemon
            log.exception("unexpected error processing %s", job.path)
            outcome = FAILED
            self.failed_paths[str(job.path)] = f"internal error: {e}"
        with self._lock:
            self.outcomes[outcome] += 1
            self._in_flight.pop(job.path, None)
            self._last_progress = self.clock()
        if outcome == RETRY and self.mode == "run":
            self._candidate(job.path, folder)
        elif outcome == RETRY and self.mode == "scan" and not self.processor.credits_paused.is_set():
            self._candidate(job.path, folder)
        elif outcome == FAILED:
            record = self.journal.get(job.path)
            self.failed_paths[str(job.path)] = record.error if record and record.error else "failed"
            if self.mode == "run" and record and record.next_attempt:
                with self._lock:
                    heapq.heappush(self._retry_heap, (record.next_attempt, str(job.path)))
        if self.metrics:
            self.metrics.file_outcome(outcome)
        self._wake.set()

    def _due_retries(self) -> None:
        now = time.time()
        with self._lock:
            while self._retry_heap and self._retry_heap[0][0] <= now:
                _, path = heapq.heappop(self._retry_heap)
                folder = self._folder_for(Path(path))
                if folder:
                    self._candidate(Path(path), folder)

    def _task_finished(self, path: Path, status: str) -> None:
        with self._lock:
            self.outcomes["succeeded" if status == "SUCCEEDED" else "task_failed"] += 1
            self._last_progress = self.clock()
        if self.metrics:
            self.metrics.task_finished(status)
        self._wake.set()

    def _key_rejected(self, error: KeyRejected) -> None:
        if self._paused is None:
            log.error("%s; all work is paused. Fix the key, then reload (SIGHUP)", error)
        self._paused = str(error)
        self.follower.paused.set()
        if self.mode == "scan":
            self.request_stop()

    def _recover_journal(self) -> None:
        """A crash between recording the intent and recording the task id: a task may exist."""
        for record in self.journal.in_state("submitting"):
            record.state = "attention"
            record.error = "the daemon stopped while submitting; a task may have been created"
            self.journal.put(record)
            log.error("%s needs attention: %s (run `runwatchd retry %s`)", record.path,
                      record.error, record.path)
        for record in self.journal.in_state("running"):
            folder_rule_dir = self._output_dir_for(Path(record.path))
            self.follower.follow(Path(record.path), record.task_id, folder_rule_dir)

    def _output_dir_for(self, path: Path) -> Path:
        folder = self._folder_for(path) if self.folders else None
        if folder is None:
            self.folders = [self._make_folder(fc) for fc in self.config.folders]
            folder = self._folder_for(path)
        rule = folder.resolver.rule_for(path) if folder else None
        return rule.output_path(folder.root) if rule and folder else path.parent

    def _do_reload(self) -> None:
        if self.notifier:
            self.notifier.reloading()
        try:
            config = self.config_loader() if self.config_loader else self.config
            client = self.client_factory(config) if self.client_factory else self.client
            client.check_key()
        except Exception as e:  # noqa: BLE001 - a bad reload keeps the running configuration
            log.error("reload failed, keeping the running configuration: %s", e)
            if self.notifier:
                self.notifier.ready(self._status_line())
            return
        self.config, self.client = config, client
        self.processor.client = self.follower.client = client
        old = {f.root: f for f in self.folders}
        new_roots = {fc.path for fc in config.folders}
        for root, folder in old.items():
            if root not in new_roots:
                folder.stop_watching()
                log.info("stopped watching %s", root)
        self.folders = [old[fc.path] if fc.path in old and old[fc.path].config == fc
                        else self._make_folder(fc) for fc in config.folders]
        for folder in self.folders:
            if folder.root not in old or old[folder.root] is not folder:
                if folder.root in old:
                    old[folder.root].stop_watching()
                folder.start_watching()
                self._scan(folder, "reload")
        self._paused = None
        self.follower.paused.clear()
        self.processor.credits_paused.clear()
        log.info("configuration reloaded: %d folder(s)", len(self.folders))
        if self.notifier:
            self.notifier.ready(self._status_line())

    # -- health and status ---------------------------------------------------------------------

    def healthy(self) -> bool:
        """Observers alive and workers making progress (or nothing to do)."""
        if self.mode == "run" and not all(f.healthy() for f in self.folders):
            return False
        if not self.follower.is_alive():
            return False
        busy = bool(self._in_flight)
        stalled = busy and self.clock() - self._last_progress > 900
        return not stalled

    def _idle(self) -> bool:
        return (not len(self.table) and not self._ready and not self._in_flight
                and (self.follower.pending() == 0 or self.follower.paused.is_set()))

    def _sleep_time(self) -> float:
        due = self.table.next_due()
        candidates = [1.0] + ([due] if due is not None else [])
        if self._pinger is not None and self._pinger.next_due() is not None:
            # Floor: while unhealthy the ping stays overdue, and that must not become a busy loop.
            candidates.append(max(0.25, self._pinger.next_due()))
        return max(0.005, min(candidates))

    def _heartbeat(self) -> None:
        if self._pinger is not None:
            self._pinger.tick()  # WATCHDOG=1 only while observers live and workers progress
        now = time.monotonic()
        if now - self._last_status_write >= 2.0:
            self._last_status_write = now
            self._write_status()
            if self.notifier:
                self.notifier.status(self._status_line())
            if self.metrics:
                self.metrics.set_queue_depth(len(self.table) + len(self._ready))
                self.metrics.set_in_flight(len(self._in_flight))

    def _status_line(self) -> str:
        o = self.outcomes
        text = (f"{len(self._in_flight)} uploading, {len(self.table) + len(self._ready)} waiting, "
                f"{self.follower.pending()} tasks; {o['uploaded']} uploaded, {o[FAILED]} failed")
        return f"PAUSED: {self._paused}" if self._paused else text

    def _write_status(self, final: bool = False) -> None:
        status = {
            "pid": os.getpid(), "running": not final, "updated_at": time.time(),
            "paused": self._paused, "in_flight": sorted(str(p) for p in self._in_flight),
            "waiting": len(self.table) + len(self._ready), "tasks_followed": self.follower.pending(),
            "outcomes": dict(self.outcomes),
            "folders": [{"path": str(f.root), "observer": f.kind, "state": f.state}
                        for f in self.folders],
        }
        try:
            fsutil.atomic_write_bytes(self.state_dir / STATUS_FILE,
                                      json.dumps(status, indent=2).encode())
        except OSError as e:
            log.debug("cannot write status file: %s", e)
