"""Wiring and lifecycle: observers and scans feed one candidate table; settled files go to workers.

    startup()    check the key, start observers, catch-up scan, READY=1
    main_loop()  settle -> dispatch (`concurrency` transfers at most), rescans, retries, health
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
from runwatchd.errors import KeyRejected, RunwatchdError
from runwatchd.folders import Folder
from runwatchd.journal import FileRecord, Journal
from runwatchd.notify import WatchdogPinger
from runwatchd.pipeline import (
    ATTENTION, AWAITING, FAILED, INVALID, RETRY, SKIPPED, Job, Processor,
)
from runwatchd.rules import Rule
from runwatchd.settle import CandidateTable, Signature, signature_of
from runwatchd.status import STATUS_FILE
from runwatchd.tasks import TaskFollower
from runwatchd.watch import install_overflow_hook

log = logging.getLogger(__name__)

# Long enough for any poll or slot request started with a client replaced by a reload to end.
RETIRED_CLIENT_GRACE = 120.0

# Files whose journal row is in one of these states, unchanged, need nothing at a scan.
_SETTLED_STATES = ("uploaded", "succeeded", "task_failed", "attention", "invalid", "running",
                   "submitting")
# Files worked on per upload in flight: while `concurrency` files move their bytes (the client's
# transfer limit), as many again wait on an API round trip (slot request, journal, sidecar) rather
# than on a free worker. For small files that round trip is most of the time (benchmarks/, case 2).
_WORKERS_PER_TRANSFER = 2
# Settled states that are no success: `scan` exits 1 while such a file sits in its scope.
_FAILURE_STATES = ("task_failed", "attention", "invalid")


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
        self.follower = TaskFollower(
            client, journal, poll_interval=poll_interval, on_key_rejected=self._key_rejected,
            on_output=self._own_output, on_finished=self._task_finished,
        )
        self.processor = Processor(client, journal, follow=self.follower.follow)
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

    # -- scanning and events -------------------------------------------------------------------

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

    def _scan(self, folder: Folder, why: str, top: Path | None = None) -> None:
        known = self.journal.signatures()
        found = queued = 0
        # Catch-up only: files the journal does not know whose sidecars already describe them are
        # recorded here, in batches, instead of each going through settle and a worker.
        adopt = why == "catch-up" and self.only is None
        adopted: list[FileRecord] = []
        recorded = 0
        rules: dict[Path, Rule | None] = {}
        tops = [top] if top is not None else self.scan_tops.get(folder.root) or [None]
        try:
            for one_top in tops:
                for path, st in folder.scan(one_top):
                    if self._stop.is_set():
                        return  # SIGTERM during a long catch-up scan: the next start scans again
                    self._keepalive()  # cheap: a clock read unless a ping is due
                    if self.only is not None and path not in self.only:
                        continue
                    found += 1
                    row = known.get(str(path))
                    if not self._needs_look(path, st, row):
                        continue
                    if adopt and row is None:
                        if path.parent not in rules:
                            rules[path.parent] = folder.resolver.rule_for(path)
                        record = self.processor.adoptable(path, st, rules[path.parent])
                        if record is not None:
                            adopted.append(record)
                            if len(adopted) >= 1000:
                                self.journal.put_many(adopted)
                                recorded += len(adopted)
                                adopted.clear()
                            continue
                    queued += 1
                    self._candidate(path, folder)
        finally:
            if adopted:
                self.journal.put_many(adopted)
                recorded += len(adopted)
        log.info("%s scan of %s: %d file(s), %d to look at%s", why, folder.root, found, queued,
                 f", {recorded} recorded from their sidecars" if recorded else "")

    def _needs_look(self, path: Path, st: os.stat_result, row: tuple | None) -> bool:
        """Whether a scanned file goes to the candidate table. A journal row describing the file
        unchanged answers without reading the sidecar (a rescan of 100k finished files is cheap)."""
        if self.only is not None:
            return True  # named on purpose (`runwatchd retry`): the processor decides
        if row is None or row[1:] != (st.st_size, st.st_mtime_ns, st.st_ino):
            return True
        state = row[0]
        if state == "failed" and self.mode == "run":
            record = self.journal.get(path)
            if record is not None and record.next_attempt and record.next_attempt > time.time():
                self._schedule_retry(str(path), record.next_attempt)  # its backoff stands
                return False
            return True
        if state not in _SETTLED_STATES:
            return True
        if state not in ("invalid", "running", "submitting") and not os.path.exists(
                sidecar.sidecar_path(path)):
            return True  # the sidecar was deleted: the user wants the file processed again
        if self.mode == "scan" and state in _FAILURE_STATES:
            # Not retried (the file did not change), but not a success either.
            record = self.journal.get(path)
            reason = record.error if record and record.error else state
            self.failed_paths[str(path)] = f"{reason} (recorded earlier; the file did not change)"
        return False

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
            outcome = self.processor.process(job)
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

    def _count(self, path: Path, outcome: str, uri_before: str | None) -> None:
        """Metrics for one processed file; a new runway:// URI in its journal row means it was
        uploaded by this job (a fresh sidecar needs no upload, a stale URI needs one)."""
        try:
            record = self.journal.get(path)
            uploaded = bool(record and record.runway_uri and record.runway_uri != uri_before)
            self.metrics.file_processed(
                outcome, state=record.state if record else None,
                error=record.error if record else None,
                uploaded_bytes=(record.size or 0) if record and uploaded else None)
        except Exception:  # noqa: BLE001 - metrics must never cost a file its bookkeeping
            log.exception("recording metrics for %s failed", path)

    def _after(self, path: Path, outcome: str, internal: str | None) -> bool:
        """Record how a file ended (for scan's exit code); True when it goes back to settle."""
        if outcome == "paused":
            return False
        if outcome == AWAITING:  # submitted once credits are back: after a reload or restart
            if self.mode == "scan":
                self.failed_paths[str(path)] = "generation not submitted: no credits left"
            return False
        if outcome == RETRY:
            if self.mode == "scan" and self.processor.credits_paused.is_set():
                self.failed_paths[str(path)] = "generation not submitted: no credits left"
                return False
            return True  # it changed while uploading, or generation waits for credits
        record = self.journal.get(path)
        failed = outcome in (FAILED, INVALID, ATTENTION) or (
            outcome == SKIPPED and record is not None and record.state in _FAILURE_STATES)
        if not failed:
            self.failed_paths.pop(str(path), None)
        elif outcome == INVALID and record is None and not path.exists():
            self.failed_paths.pop(str(path), None)  # deleted before its turn: nothing to report
        else:
            reason = internal or (record.error if record and record.error else outcome)
            self.failed_paths[str(path)] = reason
            if outcome == FAILED and self.mode == "run" and record and record.next_attempt:
                self._schedule_retry(str(path), record.next_attempt)
        return False

    def _schedule_retry(self, path: str, when: float) -> None:
        with self._lock:
            if self._retry_at.get(path) == when:
                return
            self._retry_at[path] = when  # an older heap entry for the path becomes stale
            heapq.heappush(self._retry_heap, (when, path))

    def _due_retries(self) -> None:
        now = time.time()
        due = []
        with self._lock:
            while self._retry_heap and self._retry_heap[0][0] <= now:
                when, path = heapq.heappop(self._retry_heap)
                if self._retry_at.get(path) == when:
                    del self._retry_at[path]
                    due.append(path)
        for path in due:
            folder = self._folder_for(Path(path))
            if folder:
                log.info("retrying %s", path)
                self._candidate(Path(path), folder)

    def _task_finished(self, path: Path, status: str) -> None:
        if status == "SUCCEEDED":
            self.failed_paths.pop(str(path), None)
        else:
            record = self.journal.get(path)
            why = record.failure if record and record.failure else None
            self.failed_paths[str(path)] = f"generation {status}" + (f": {why}" if why else "")
        with self._lock:
            self.outcomes["succeeded" if status == "SUCCEEDED" else "task_failed"] += 1
            self._last_progress = self.clock()
        if self.metrics:
            self.metrics.task_finished(status)
        self._wake.set()

    def _key_rejected(self, error: KeyRejected) -> None:
        with self._lock:  # workers and the follower meet the 401 together: one message
            first, self._paused = self._paused is None, str(error)
        if first:
            log.error("%s; all work is paused. Fix the key, then reload (SIGHUP)", error)
        self.follower.paused.set()
        if self.mode == "scan":
            self.request_stop()

    def _recover_journal(self) -> None:
        """Repair what a crash left (Processor.recover). Only the process owning the journal
        does: `scan` or `retry` beside a running daemon must leave that daemon's work alone."""
        self._owner = self.journal.acquire_owner_lock()
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

    def _do_reload(self) -> None:
        if self.notifier:
            self.notifier.reloading()
        try:
            config = self.config_loader() if self.config_loader else self.config
            client = self.client_factory(config) if self.client_factory else self.client
            try:
                self._check_key_alive(client)
            except KeyRejected:
                raise
            except RunwatchdError as e:  # the network, not the key: the new config still applies
                log.warning("could not check the API key on reload (%s); going on", e)
        except Exception as e:  # noqa: BLE001 - a bad reload keeps the running configuration
            log.error("reload failed, keeping the running configuration: %s", e)
            if self.notifier:
                self.notifier.ready(self._status_line())
            return
        if client is not self.client:
            # Uploads in flight and a poll under way may still use the old client: close it
            # once they are done (see _close_retired_clients), not now.
            self._retired_clients.append((self.clock(), self.client))
        self.config, self.client = config, client
        client.limit_transfers(config.runway.concurrency)
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
        for record in self.journal.in_state("awaiting_credits"):
            folder = self._folder_for(Path(record.path))
            if folder is not None:
                self._candidate(Path(record.path), folder)
        log.info("configuration reloaded: %d folder(s)", len(self.folders))
        if self.notifier:
            self.notifier.ready(self._status_line())

    def _close_retired_clients(self) -> None:
        """Close clients replaced by a reload once nothing can be using them any more."""
        while (self._retired_clients and not self._in_flight
               and self.clock() - self._retired_clients[0][0] > RETIRED_CLIENT_GRACE):
            _, old = self._retired_clients.pop(0)
            old.close()

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
        with self._lock:
            if self._retry_heap:
                candidates.append(max(0.0, self._retry_heap[0][0] - time.time()))
        pinger = self._pinger
        if pinger is not None and pinger.interval and (ping := pinger.next_due()) is not None:
            # Floor: while unhealthy the ping stays overdue, and that must not become a busy loop;
            # a quarter interval keeps a short WatchdogSec on time once healthy again.
            candidates.append(max(min(0.25, pinger.interval / 4), ping))
        return max(0.005, min(candidates))

    def _keepalive(self) -> None:
        """WATCHDOG=1 from inside a long scan (100k files on a NAS take longer than WatchdogSec).
        Not before READY=1: systemd arms the watchdog at READY=1, and an early ping would arm it
        during a catch-up scan that TimeoutStartSec already covers."""
        if self._pinger is not None and self._started:
            self._pinger.tick()

    def _check_key_alive(self, client: RunwayClient) -> None:
        """client.check_key() off the main loop, feeding the watchdog meanwhile: its retries can
        take minutes while the API is down, and a slow API is no wedged daemon."""
        box: list[BaseException] = []

        def check() -> None:
            try:
                client.check_key()
            except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
                box.append(e)

        thread = threading.Thread(target=check, name="runwatchd-key-check", daemon=True)
        thread.start()
        while thread.is_alive() and not self._stop.is_set():
            thread.join(0.25)
            self._keepalive()
        if thread.is_alive():
            raise RuntimeError("stopping before the API key could be checked")
        if box:
            raise box[0]

    def _heartbeat(self) -> None:
        if self._pinger is not None:
            self._pinger.tick()  # WATCHDOG=1 only while observers live and workers progress
        now = time.monotonic()
        if now - self._last_status_write >= 2.0:
            self._last_status_write = now
            self._close_retired_clients()
            self._write_status()
            line = self._status_line()
            if self.notifier and line != self._last_status_line:
                self._last_status_line = line
                self.notifier.status(line)
            if self.metrics:
                self.metrics.set_queue_depth(len(self.table) + len(self._ready))
                self.metrics.set_in_flight(len(self._in_flight) + self.follower.pending())
                self.metrics.set_files_by_state(self.journal.counts())

    def _status_line(self) -> str:
        o = self.outcomes
        text = (f"{len(self._in_flight)} uploading, {len(self.table) + len(self._ready)} waiting, "
                f"{self.follower.pending()} tasks; {o['uploaded']} uploaded, {o[FAILED]} failed")
        away = [f for f in self.folders if f.state == "unavailable"]
        if away:
            text += f"; {len(away)} folder(s) unavailable: {', '.join(str(f.root) for f in away)}"
        return f"PAUSED: {self._paused}" if self._paused else text

    def _write_status(self, final: bool = False) -> None:
        if not self._owner:
            return  # a `scan` beside the daemon: `runwatchd status` describes the daemon
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


def _unchanged(path: Path, sig: Signature) -> bool:
    try:
        return signature_of(os.stat(path)) == sig
    except OSError:
        return False
