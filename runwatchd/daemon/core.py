"""Wiring and lifecycle: observers and scans feed one candidate table; settled files go to workers.

    startup()    check the key, start observers, catch-up scan, READY=1
    main_loop()  settle -> dispatch (`concurrency` transfers at most), rescans, retries, health
    shutdown()   stop taking files, let in-flight uploads finish within the grace period, STOPPING=1

Signals only set flags (`request_stop`, `request_reload`); the CLI installs the handlers, so a
test can run a Daemon in a thread without touching the process's signals.

The daemon's other concerns are mixed in from their own modules: scans (catchup.py), the book of
how each file ended and its retries (outcomes.py), SIGHUP's reload (reload.py), and health and
status reports (health.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from runwatchd.daemon.reconcile import ScanMixin
from runwatchd.runway.client import RunwayClient
from runwatchd.config.load import Config
from runwatchd.errors import KeyRejected
from runwatchd.watch.folders import Folder
from runwatchd.service.health import HealthMixin
from runwatchd.store.sqlite import SqliteStore
from runwatchd.service.notify import WatchdogPinger
from runwatchd.daemon.outcome_book import FAILED, INVALID, OutcomeMixin
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.processor import FileProcessor, Job
from runwatchd.runway.client_ref import ClientRef
from runwatchd.daemon.reload import ReloadMixin
from runwatchd.watch.settle import CandidateTable, Signature, signature_of
from runwatchd.generation.follower import TaskFollower
from runwatchd.watch.observers import install_overflow_hook

log = logging.getLogger(__name__)

# Files worked on per upload in flight: while `concurrency` files move their bytes (the client's
# transfer limit), as many again wait on an API round trip (slot request, journal, sidecar) rather
# than on a free worker. For small files that round trip is most of the time (benchmarks/, case 2).
_WORKERS_PER_TRANSFER = 2


class Daemon(ScanMixin, OutcomeMixin, ReloadMixin, HealthMixin):
    """The hot-folder daemon. `mode="scan"` processes what exists and returns when all is done."""

    def __init__(
        self,
        config: Config,
        client: RunwayClient,
        journal: SqliteStore,
        *,
        state_dir: Path,
        mode: str = "run",
        notifier=None,
        metrics=None,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float | None = None,  # None: tasks.resolve_poll_interval
        client_factory: Callable[[Config], RunwayClient] | None = None,
        config_loader: Callable[[], Config] | None = None,
        scan_tops: dict[Path, list[Path]] | None = None,
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
        self.client_ref = ClientRef(client)
        self.pauses = Pauses()
        self.follower = TaskFollower(
            self.client_ref, journal, self.pauses, poll_interval=poll_interval,
            on_key_rejected=self._key_rejected, on_output=self._own_output,
            on_finished=self._task_finished,
        )
        self.processor = FileProcessor(self.client_ref, journal, self.pauses,
                                       follow=self.follower.follow)
        self.folders: list[Folder] = []
        self.outcomes: Counter[str] = Counter()
        self.failed_paths: dict[str, str] = {}  # final failures (scan prints them, exit 1)
        self.unfinished = 0  # uploads still running when the grace period ended
        self._own_outputs: set[Path] = set()
        self._ready: deque[tuple[Path, Folder, Signature | None]] = deque()
        self._queued: set[Path] = set()  # paths in _ready
        self._dirty: set[Path] = set()  # in flight, and an event said they changed meanwhile
        self._retry_at: dict[str, float] = {}  # path -> epoch time in _retry_heap
        self._new_dirs: deque[tuple[Folder, Path]] = deque()
        self._in_flight: dict[Path, Future | None] = {}  # None: being submitted
        self._retry_heap: list[tuple[float, str]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._paused: str | None = None
        self._lock = threading.Lock()
        self._detect_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(_WORKERS_PER_TRANSFER * config.runway.concurrency,
                                        thread_name_prefix="runwatchd-up")
        client.limit_transfers(config.runway.concurrency)
        self._uninstall_overflow: Callable[[], None] | None = None
        self._last_progress = clock()
        self._last_status_write = 0.0
        self._last_status_line = ""
        self._started = False
        self._owner = False  # holds the journal's owner lock (else status.json is not ours)
        self._pinger = WatchdogPinger(notifier, self.healthy) if notifier is not None else None
        self._retired_clients: list[tuple[float, RunwayClient]] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """startup, main loop, shutdown; returns the exit code (scan: 1 unless every file
        in scope ended well, including files that failed before and did not change since)."""
        try:
            self.startup()
            self.main_loop()
        finally:
            self.shutdown()
        if self.mode == "scan":
            interrupted = self._stop.is_set() and not self._idle()
            if self.failed_paths or self._paused or interrupted:
                return 1
        return 0

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        if self.mode != "run":
            return  # a scan has nothing to reload, and must not start observers
        self._reload.set()
        self._wake.set()

    def startup(self) -> None:
        for d in (self.state_dir,):
            d.mkdir(parents=True, exist_ok=True)
        self._uninstall_overflow = install_overflow_hook(self._overflowed)
        self.folders = [self._make_folder(fc) for fc in self.config.folders]
        self._recover_journal()
        self.follower.start()
        for folder in self.folders:
            if self.mode == "run":
                folder.start_watching()
            self._scan(folder, "catch-up")
        if self.notifier:
            self.notifier.ready(self._status_line())
        self._started = True
        if self.mode == "run":
            log.info("ready: watching %d folder(s), %d file(s) waiting to settle",
                     len(self.folders), len(self.table))
        else:
            log.info("scanning %d folder(s): %d file(s) waiting to settle", len(self.folders),
                     len(self.table))

    def main_loop(self) -> None:
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            for path, sig in self.table.pop_ready():
                folder = self._folder_for(path)
                if folder is not None:
                    log.info("settled %s", path)
                    self._ready.append((path, folder, sig))
                    self._queued.add(path)
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
        pending = [fut for fut in list(self._in_flight.values()) if fut is not None]
        if pending:
            log.info("waiting up to %.0f s for %d upload(s) in flight", grace, len(pending))
        for fut in pending:
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a timeout or failure is reported below
                pass
        self.unfinished = sum(1 for fut in pending if not fut.done())
        if self.unfinished:
            log.warning("%d upload(s) did not finish within %.0f s; they start over at the next "
                        "start", self.unfinished, grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.follower.stop()
        for _, old in self._retired_clients:
            old.close()
        if self._uninstall_overflow:
            self._uninstall_overflow()
        self._write_status(final=True)
        o = self.outcomes
        log.info("shutdown ◆ %d uploaded ◆ %d submitted ◆ %d skipped ◆ %d failed ◆ %d invalid "
                 "◆ %d still waiting", o["uploaded"], o["submitted"], o["skipped"], o[FAILED],
                 o[INVALID], len(self.table) + len(self._ready))

    # -- events --------------------------------------------------------------------------------

    def _make_folder(self, fc) -> Folder:
        return Folder(fc, on_candidate=self._candidate, on_dir=self._dir_appeared,
                      is_own_output=self._is_own_output, clock=self.clock)

    def _candidate(self, path: Path, folder: Folder, closed: bool = False) -> None:
        if path in self._own_outputs or path in self._queued:
            return  # a queued file's signature is checked again when a worker takes it
        if path in self._in_flight:
            self._dirty.add(path)  # looked at again once its worker is done
            return
        with self._detect_lock:  # an event and a scan may bring the same new file at once
            new = path not in self.table
            self.table.touch(path, folder.settings.settle_seconds, closed=closed)
            if new and path in self.table:
                # One line per file, however many events its writer causes.
                log.info("detected %s", path)
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
        # The journal knows output folders a rule no longer names (a rules file was edited).
        return path in self._own_outputs or self.processor.is_output(path)

    # -- work ----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        limit = _WORKERS_PER_TRANSFER * self.config.runway.concurrency
        while self._ready and not self._paused and len(self._in_flight) < limit:
            path, folder, sig = self._ready.popleft()
            self._queued.discard(path)
            if path in self._in_flight or folder not in self.folders:
                continue  # already being worked on, or its folder was removed by a reload
            if folder.state == "unavailable":
                # Its mount is gone: failing the file would only flood the log. The rescan that
                # follows the folder's return finds it again.
                log.debug("%s: folder unavailable; leaving it for the rescan", path)
                continue
            if sig is not None and not _unchanged(path, sig):
                self._candidate(path, folder)  # written to while it waited for a worker
                continue
            job = Job(path=path, root=folder.root, resolver=folder.resolver)
            with self._lock:
                # Before submit: a fast worker pops its entry, and must find one to pop.
                self._in_flight[path] = None
            fut = self._pool.submit(self._work, job, folder, sig)
            with self._lock:
                if path in self._in_flight:
                    self._in_flight[path] = fut

    def _work(self, job: Job, folder: Folder, sig: Signature | None = None) -> None:
        before = self.journal.get(job.path) if self.metrics else None
        path, internal = job.path, None
        try:
            outcome = self.processor.process(job).outcome
        except KeyRejected as e:
            self._key_rejected(e)
            outcome = "paused"
        except Exception as e:  # a bug must cost one file, not the daemon
            log.exception("unexpected error processing %s", path)
            outcome, internal = FAILED, f"internal error: {e}"
        with self._lock:
            self.outcomes[outcome] += 1
            self._in_flight.pop(path, None)
            dirty = path in self._dirty
            self._dirty.discard(path)
            self._last_progress = self.clock()
            if outcome == "paused":
                self._ready.appendleft((path, folder, None))
                self._queued.add(path)
        try:
            again = self._after(path, outcome, internal)
        except Exception:  # noqa: BLE001 - bookkeeping must not leave the loop waiting
            log.exception("bookkeeping for %s failed", path)
            again = False
        # A scan or event while it was in flight: only a real change makes it a candidate again
        # (else a scan during a failing upload would cut its backoff short).
        changed = dirty and outcome != "paused" and (sig is None or not _unchanged(path, sig))
        if again or changed:
            self._candidate(path, folder)
        if self.metrics:
            self._count(job.path, outcome, before.runway_uri if before else None)
        self._wake.set()

    def _key_rejected(self, error: KeyRejected) -> None:
        with self._lock:  # workers and the follower meet the 401 together: one message
            first, self._paused = self._paused is None, str(error)
        if first:
            log.error("%s; all work is paused. Fix the key, then reload (SIGHUP)", error)
        self.pauses.reject_key(str(error))
        if self.mode == "scan":
            self.request_stop()

    def _recover_journal(self) -> None:
        """Repair what a crash left (Processor.recover). Only the process owning the journal
        does: `scan` or `retry` beside a running daemon must leave that daemon's work alone."""
        self._owner = self.journal.take_ownership()
        if not self._owner:
            log.info("another runwatchd process works on this state directory; leaving its "
                     "work in progress alone")
            return
        # A scan waits for its own files' tasks only.
        self.processor.recover(self._output_dir_for,
                               in_scope=self._in_scope if self.mode == "scan" else None)

    def _in_scope(self, path: Path) -> bool:
        folder = self._folder_for(path)
        if folder is None or (self.only is not None and path not in self.only):
            return False
        tops = self.scan_tops.get(folder.root)
        return not tops or any(top == path.parent or top in path.parents for top in tops)

    def _output_dir_for(self, path: Path) -> Path:
        folder = self._folder_for(path)
        rule = folder.resolver.rule_for(path) if folder else None
        return rule.output_path(folder.root) if rule and folder else path.parent

    # -- pace of the main loop -----------------------------------------------------------------

    def _idle(self) -> bool:
        return (not len(self.table) and not self._ready and not self._in_flight
                and (self.follower.pending() == 0 or self.pauses.key_rejected is not None))

    def _sleep_time(self) -> float:
        due = self.table.next_due()
        candidates = [1.0] + ([due] if due is not None else [])
        with self._lock:
            if self._retry_heap:
                candidates.append(max(0.0, self._retry_heap[0][0] - time.time()))
        pinger = self._pinger
        if pinger is not None and pinger.interval and (ping := pinger.next_due()) is not None:
            # Floor: while unhealthy the ping stays overdue, and that must not become a busy loop;
            # a quarter interval keeps a short WatchdogSec on time once healthy again.
            candidates.append(max(min(0.25, pinger.interval / 4), ping))
        return max(0.005, min(candidates))


def _unchanged(path: Path, sig: Signature) -> bool:
    try:
        return signature_of(os.stat(path)) == sig
    except OSError:
        return False
