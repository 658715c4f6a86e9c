"""Wiring and lifecycle: observers and scans feed one candidate table; settled files go to workers.

    startup()    check the key, start observers, catch-up scan, READY=1
    main_loop()  settle -> dispatch (`concurrency` transfers at most), rescans, retries, health
    shutdown()   stop taking files, let in-flight uploads finish within the grace period, STOPPING=1

Signals only set flags (`request_stop`, `request_reload`); the CLI installs the handlers, so a
test can run a Daemon in a thread without touching the process's signals.

The Daemon owns and wires its parts; each owns its state, and is handed its collaborators (as
objects or callables) when it is made:

    FolderSet        the watched folders (observers, filters, rules)      folder_set.py
    CandidateTable   files waiting to settle                              watch/settle.py
    Scheduler        ready queue, in flight, dirty, pool, and THE lock    scheduler.py
    Reconciler       every scan, and what a scanned file needs            reconcile.py
    OutcomeBook      outcome counts, what scan reports, the retry queue   outcome_book.py
    Reloader         SIGHUP: the config in force, the client swap         reload.py
    Health           watchdog pings, status line, status.json, gauges     service/health.py
    Pauses           a rejected key, no credits left                      lifecycle/pauses.py
    Processor -> TaskFollower   one file's way, and its generation        lifecycle/, generation/
    FileWork         a settled file's turn on a worker (lease, process)   work.py
    WorkClaims       leases on the files worked on, heartbeat, orphans    claims.py
    StoreOutage      no new work while the store is unreachable           outage.py
    Repairs          start-up recovery, a dead holder's work taken over   repair.py
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runwatchd.config.load import Config, FolderConfig
from runwatchd.daemon.claims import WorkClaims
from runwatchd.daemon.folder_set import FolderSet
from runwatchd.daemon.journal_watch import JournalWatch
from runwatchd.daemon.outage import StoreOutage
from runwatchd.daemon.outcome_book import OutcomeBook
from runwatchd.daemon.policy import RUN, RunPolicy, Scope
from runwatchd.daemon.reconcile import Reconciler
from runwatchd.daemon.reload import Reloader
from runwatchd.daemon.repair import Repairs
from runwatchd.daemon.scheduler import Scheduler, Settled
from runwatchd.daemon.upload_meter import UploadMeter
from runwatchd.daemon.waker import Waker
from runwatchd.daemon.work import FileWork
from runwatchd.errors import KeyRejected, StoreUnavailable
from runwatchd.generation.follower import TaskFollower
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.processor import FileProcessor
from runwatchd.lifecycle.states import Outcome
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.client_ref import ClientRef
from runwatchd.service.credits import CreditWatch
from runwatchd.service.health import FolderView, Health, Snapshot
from runwatchd.service.metrics import Metrics
from runwatchd.service.notify import Notifier
from runwatchd.service.status import startup_line
from runwatchd.store.base import Store
from runwatchd.watch.folders import Folder
from runwatchd.watch.observers import install_overflow_hook
from runwatchd.watch.settle import CandidateTable
from runwatchd.watch.skips import SkipLog

log = logging.getLogger(__name__)


class Daemon:
    """The hot-folder daemon: `policy` says how it runs (RUN watches until stopped, SCAN
    processes what exists and returns when all is done), `scope` which files it covers.
    `started` is set once start-up is done (READY=1)."""

    def __init__(
        self,
        config: Config,
        client: RunwayClient,
        journal: Store,
        *,
        state_dir: Path,
        policy: RunPolicy = RUN,
        scope: Scope | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        poll_interval: float | None = None,  # None: follower.resolve_poll_interval
        client_factory: Callable[[Config], RunwayClient] | None = None,
        config_loader: Callable[[], Config] | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> None:
        self.journal = journal
        self.state_dir = state_dir
        self.policy = policy
        self.scope = scope if scope is not None else Scope()
        self.clock = clock
        self.journal_watch = JournalWatch(journal, clock)
        self.client_ref = ClientRef(client)
        self.pauses = Pauses()
        self.started = threading.Event()
        self.unfinished = 0  # uploads still running when the grace period ended
        # Set from signal handlers: plain attributes and a self-pipe, never a lock (issue 13).
        self._stopping = False
        self._stop_reason: str | None = None
        self._reload_pending = False
        self._waker = Waker()
        self._detect_lock = threading.Lock()
        self._own_outputs: set[Path] = set()
        self._uninstall_overflow: Callable[[], None] | None = None
        self.table = CandidateTable(clock=clock)
        self.follower = TaskFollower(
            self.client_ref, journal, self.pauses, poll_interval=poll_interval,
            on_key_rejected=self._key_rejected, on_output=self._own_outputs.add,
            on_finished=self._task_finished, on_store_lost=lambda e: self.outage.lost(e))
        self.uploads = UploadMeter(on_done=metrics.upload_took if metrics else None)
        self._metrics = metrics
        self.skips = SkipLog(metrics.file_not_taken if metrics else None, clock=clock)
        self.processor = FileProcessor(self.client_ref, journal, self.pauses,
                                       follow=self._follow, backoff=backoff,
                                       progress=self.uploads.progress_for)
        self.folders = FolderSet(self._make_folder)
        self.book = OutcomeBook(journal, policy, credits_out=lambda: self.pauses.credits_out,
                                metrics=metrics, wall_clock=wall_clock,
                                held_delay=(config.store.lease_seconds / 3
                                            if policy.watch else 0.5))
        self.claims = WorkClaims(
            journal, seconds=config.store.lease_seconds,
            busy=lambda: set(self.scheduler.in_flight()) | self.follower.followed_paths(),
            take_over=(lambda rows: self.repairs.take_over(rows)) if policy.watch else None,
            clock=clock)
        self.outage = StoreOutage(grace=config.store.outage_seconds,
                                  settle=config.store.lease_seconds / 3, probe=self.claims.beat,
                                  clock=clock)
        self.work = FileWork(
            journal=journal, processor=self.processor, claims=self.claims,
            book=self.book, folders=self.folders, uploads=self.uploads, outage=self.outage,
            followed=self.follower.followed_paths, candidate=self._candidate,
            finish=lambda path, requeue: self.scheduler.finish(path, requeue=requeue),
            key_rejected=self._key_rejected)
        self.scheduler = Scheduler(
            transfers=config.runway.concurrency, admit=self.work.admit, work=self.work.run,
            paused=lambda: self.pauses.key_rejected is not None or self.outage.holding(),
            wake=self.wake, clock=clock)
        client.limit_transfers(config.runway.concurrency)
        credits = CreditWatch(lambda: self.client_ref.current.check_key(attempts=1),
                              warn_below=lambda: self.config.daemon.credits_warning_below,
                              metrics=metrics) if policy.watch else None
        self.health = Health(self._snapshot, state_dir=state_dir, watching=policy.watch,
                             notifier=notifier, metrics=metrics, journal_counts=journal.counts,
                             holders=journal.holders, credits=credits, clock=clock)
        self.reconciler = Reconciler(
            journal, self.folders, self.book, policy=policy, scope=self.scope,
            candidate=self._candidate, adoptable=self.processor.adoptable,
            keepalive=self.health.keepalive, stopping=self.stopping, wake=self.wake,
            wall_clock=wall_clock)
        self.repairs = Repairs(journal, self.processor, self.folders, self.claims, policy=policy,
                               scope=self.scope, look_at=self.look_at,
                               own_status=self.health.own_status_file)
        self.reloader = Reloader(
            config, self.client_ref, journal=journal, folders=self.folders,
            reconciler=self.reconciler, scheduler=self.scheduler, pauses=self.pauses,
            health=self.health, candidate=self._candidate,
            config_loader=config_loader, client_factory=client_factory,
            stopping=self.stopping, clock=clock)

    @property
    def config(self) -> Config:
        """The configuration in force (a reload replaces it)."""
        return self.reloader.config

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        """startup, main loop, shutdown; returns the exit code (when the policy reports failures:
        1 unless every file in scope ended well, including files that failed before and did not
        change since)."""
        try:
            self.startup()
            self.main_loop()
        finally:
            try:
                self.shutdown()
            finally:
                self._waker.close()
        if self.journal_watch.lost:
            return 1
        if self.policy.report_failures:
            interrupted = self._stopping and not self.idle()
            if self.book.failed_paths() or self.pauses.key_rejected or interrupted:
                return 1
        return 0

    def request_stop(self, reason: str | None = None) -> None:
        """Stop taking files; shutdown follows. Safe in a signal handler: it takes no lock
        (the main loop logs `reason`)."""
        self._stop_reason = self._stop_reason or reason
        self._stopping = True
        self._waker.wake()

    def request_reload(self) -> None:
        """Reload the configuration at the main loop's next turn; safe in a signal handler."""
        if not self.policy.reload:
            return  # a scan has nothing to reload, and must not start observers
        self._reload_pending = True
        self._waker.wake()

    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        """Make the main loop take a turn now (new work, a finished file); from any thread."""
        self._waker.wake()

    def startup(self) -> None:
        log.info("%s", startup_line(self.config, self.client_ref.current.base_url,
                                    self.state_dir), extra={"event": "startup"})
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._uninstall_overflow = install_overflow_hook(self.reconciler.overflowed)
        self.folders.replace(self.config.folders)
        self.repairs.at_startup()
        self.follower.start()
        for folder in self.folders:
            if self.policy.watch:
                folder.start_watching()
            self.reconciler.scan(folder, "catch-up")
        self.health.ready()
        self.started.set()
        if self.policy.watch:
            log.info("ready: watching %d folder(s), %d file(s) waiting to settle",
                     len(self.folders), len(self.table))
        else:
            log.info("scanning %d folder(s): %d file(s) waiting to settle", len(self.folders),
                     len(self.table))

    def main_loop(self) -> None:
        while not self._stopping:
            try:
                self._turn()
            except StoreUnavailable as e:  # a scan or a beat met the outage: wait it out
                self.outage.lost(e)
            try:  # the watchdog's pings go on through an outage, until outage_seconds
                self.health.heartbeat()
            except StoreUnavailable as e:  # the files-by-state gauge reads the store
                self.outage.lost(e)
            if self.policy.exit_when_idle and self.idle():
                break
            self._waker.wait(self._sleep_time())
        if self._stop_reason:
            log.info("%s: finishing uploads in flight, then exiting", self._stop_reason)

    def _turn(self) -> None:
        """One turn of the main loop: settle, dispatch, rescans, retries, beats, health."""
        if self.journal_watch.check():  # deleted or replaced: take no more work, exit 1
            self.request_stop("the journal is gone")
            return
        if self._reload_pending:
            self._reload_pending = False  # a SIGHUP during the reload reloads once more
            self.reloader.reload()
        for path, sig in self.table.pop_ready():
            folder = self.folders.folder_for(path)
            if folder is not None:
                log.info("settled %s", path)
                self.scheduler.enqueue(Settled(path, folder, sig))
        self.reconciler.scan_new_directories()
        self._due_retries()
        self.scheduler.dispatch()
        self.reconciler.tick(self.clock())
        self.outage.tick()
        if not self.outage.down:
            self.claims.tick(len(self.scheduler.in_flight()),
                             take_orphans=not self.outage.holding())
        self.reloader.close_retired_clients()

    def shutdown(self) -> None:
        self.health.stopping()
        self.folders.stop_watching()
        self.unfinished = self.scheduler.drain(self.config.daemon.grace_seconds)
        self.follower.stop()
        self.claims.leave()
        self.reloader.close_all()
        if self._uninstall_overflow:
            self._uninstall_overflow()
        self.health.write_final_status()
        o = self.book.counts()
        log.info("shutdown ◆ %d uploaded ◆ %d submitted ◆ %d skipped ◆ %d failed ◆ %d invalid "
                 "◆ %d still waiting", o[Outcome.UPLOADED], o[Outcome.SUBMITTED],
                 o[Outcome.SKIPPED], o[Outcome.FAILED], o[Outcome.INVALID],
                 len(self.table) + self.scheduler.queued_count())

    def idle(self) -> bool:
        """Nothing settling, queued or being worked on, and no generation followed (or all
        work is paused)."""
        return (not len(self.table) and self.scheduler.idle() and not self.book.held()
                and (self.follower.pending() == 0 or self.pauses.key_rejected is not None))

    # -- events ----------------------------------------------------------------------------------

    def _make_folder(self, fc: FolderConfig) -> Folder:
        return Folder(fc, on_candidate=self._candidate,
                      on_dir=self.reconciler.directory_appeared,
                      is_own_output=self._is_own_output, skips=self.skips, clock=self.clock)

    def _candidate(self, path: Path, folder: Folder, closed: bool = False) -> None:
        """An event or scan brought `path`: to settle, unless a worker has it or will."""
        if path in self._own_outputs or self.scheduler.hold(path):
            return
        with self._detect_lock:  # an event and a scan may bring the same new file at once
            new = path not in self.table
            self.table.touch(path, folder.settings.settle_seconds, closed=closed)
            if new and path in self.table:
                # One line per file, however many events its writer causes.
                log.info("detected %s", path)
        self._waker.wake()

    def look_at(self, path: Path) -> bool:
        """Have `path` looked at again soon (the status page's retry, after the row was marked):
        False when no watched folder holds it. Safe from any thread."""
        folder = self.folders.folder_for(path)
        if folder is None:
            return False
        self._candidate(path, folder)
        return True

    def _is_own_output(self, path: Path) -> bool:
        # The journal knows output folders a rule no longer names (a rules file was edited).
        return path in self._own_outputs or self.processor.is_output(path)

    def _due_retries(self) -> None:
        for path in self.book.due_retries():
            folder = self.folders.folder_for(path)
            if folder is not None:
                log.info("retrying %s", path)
                self._candidate(path, folder)

    # -- work ------------------------------------------------------------------------------------

    def _key_rejected(self, error: KeyRejected) -> None:
        if self.pauses.reject_key(str(error)):  # workers and the follower meet the 401 together
            log.error("%s; all work is paused. Fix the key, then reload (SIGHUP)", error)
        if self.policy.exit_when_idle:
            self.request_stop()  # nothing would ever become idle

    def _follow(self, path: Path, task_id: str, output_dir: Path) -> None:
        if self._metrics is not None:  # the task's duration starts here
            self._metrics.task_followed(path)
        self.follower.follow(path, task_id, output_dir)

    def _task_finished(self, path: Path, status: str) -> None:
        self.book.task_finished(path, status)
        self.scheduler.note_progress()
        self._waker.wake()

    # -- views -----------------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            folders=tuple(FolderView(f.root, f.kind, f.state, f.healthy()) for f in self.folders),
            in_flight=self.scheduler.in_flight(),
            waiting=len(self.table) + self.scheduler.queued_count(),
            tasks=self.follower.pending(), outcomes=self.book.counts(),
            paused=self.pauses.key_rejected, follower_alive=self.follower.is_alive(),
            last_progress=self.scheduler.last_progress(), not_taken=self.skips.counts(),
            uploads=self.uploads.snapshot(), store_outage=self.outage.unwell())

    def _sleep_time(self) -> float:
        waits = (self.table.next_due(), self.book.next_retry_in(), self.health.next_ping_in())
        return max(0.005, min([1.0, *(w for w in waits if w is not None)]))
