"""Scans into the candidate table: which scanned files go to settle, and which need nothing.

Every scan comes through the Reconciler: the catch-up scan at startup, the periodic reconcile
scan, a new directory's scan, and the scans after a reload or an inotify overflow. A journal row
describing a file unchanged answers without reading its sidecar (lifecycle.decide's
scan_verdict); the catch-up scan records files whose sidecars already describe them in batches,
instead of sending each through settle and a worker.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from runwatchd.daemon.folder_set import FolderSet
from runwatchd.daemon.outcome_book import OutcomeBook
from runwatchd.daemon.policy import RunPolicy, Scope
from runwatchd.generation.rules import Rule
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.decide import (
    Look,
    Pass,
    PassFailed,
    PassUntil,
    ScanFacts,
    ScanPolicy,
    scan_verdict,
    wants_record,
    wants_sidecar_check,
)
from runwatchd.store.base import Signature as RowSignature
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord
from runwatchd.watch.folders import Folder

log = logging.getLogger(__name__)

# Adopted records are written in batches of this many during a catch-up scan.
_ADOPT_BATCH = 1000

Adoptable = Callable[[Path, os.stat_result, Rule | None], FileRecord | None]


class Reconciler:
    """The daemon's scans, and what decides that a folder needs one.

    `candidate(path, folder)` hands a file to settle; `adoptable` (the processor's) says whether
    a file the journal does not know is described by its sidecar already; `keepalive` feeds the
    watchdog during a long scan; `stopping` ends a scan early (SIGTERM during a catch-up: the next
    start scans again); `wake` wakes the main loop."""

    def __init__(
        self,
        journal: Store,
        folders: FolderSet,
        book: OutcomeBook,
        *,
        policy: RunPolicy,
        scope: Scope,
        candidate: Callable[[Path, Folder], None],
        adoptable: Adoptable,
        keepalive: Callable[[], None] = lambda: None,
        stopping: Callable[[], bool] = lambda: False,
        wake: Callable[[], None] = lambda: None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._journal = journal
        self._folders = folders
        self._book = book
        self._policy = policy
        self._scope = scope
        self._candidate = candidate
        self._adoptable = adoptable
        self._keepalive = keepalive
        self._stopping = stopping
        self._wake = wake
        self._wall_clock = wall_clock
        self._new_dirs: deque[tuple[Folder, Path]] = deque()
        self._new_dirs_lock = threading.Lock()

    # -- what asks for a scan --------------------------------------------------------------------

    def directory_appeared(self, folder: Folder, directory: Path) -> None:
        """A new directory (observer thread): scanned by the main loop, since scanning here
        would hold up every other event."""
        with self._new_dirs_lock:
            self._new_dirs.append((folder, directory))
        self._wake()

    def scan_new_directories(self) -> None:
        while True:
            with self._new_dirs_lock:
                if not self._new_dirs:
                    return
                folder, directory = self._new_dirs.popleft()
            self.scan(folder, "new directory", top=directory)

    def overflowed(self) -> None:
        """watchdog lost events (its inotify queue overflowed): rescan every folder soon."""
        log.warning("inotify queue overflowed: rescanning every folder")
        for folder in self._folders:
            folder.rescan_soon()
        self._wake()

    def tick(self, now: float) -> None:
        """Each folder's periodic checks, which may call for a rescan (periodic, mount back,
        observer restarted, overflow)."""
        for folder in self._folders:
            folder.tick(now, rescan=functools.partial(self.scan, folder, "periodic"))

    # -- scanning --------------------------------------------------------------------------------

    def scan(self, folder: Folder, why: str, top: Path | None = None) -> None:
        """Scan `folder` (or its directory `top`) and hand what needs a look to settle."""
        # A whole-folder scan loads every journal signature once; a scan of one new directory
        # asks per file instead of loading the whole journal each time a directory appears.
        known = self._journal.signatures() if top is None else None
        found = queued = 0
        # Catch-up only: files the journal does not know whose sidecars already describe them are
        # recorded here, in batches, instead of each going through settle and a worker.
        adopt = why == "catch-up" and not self._scope.named
        adopted: list[FileRecord] = []
        recorded = 0
        rules: dict[Path, Rule | None] = {}
        tops = [top] if top is not None else self._scope.tops_for(folder.root)
        try:
            for one_top in tops:
                for path, st in folder.scan(one_top):
                    if self._stopping():
                        return  # SIGTERM during a long catch-up scan: the next start scans again
                    self._keepalive()  # cheap: a clock read unless a ping is due
                    if not self._scope.names(path):
                        continue
                    found += 1
                    row = known.get(str(path)) if known is not None else (
                        self._journal.signature(path))
                    if not self._needs_look(path, st, row):
                        continue
                    if adopt and row is None:
                        if path.parent not in rules:
                            rules[path.parent] = folder.resolver.rule_for(path)
                        record = self._adoptable(path, st, rules[path.parent])
                        if record is not None:
                            adopted.append(record)
                            if len(adopted) >= _ADOPT_BATCH:
                                self._journal.put_many(adopted)
                                recorded += len(adopted)
                                adopted.clear()
                            continue
                    queued += 1
                    self._candidate(path, folder)
        finally:
            if adopted:
                self._journal.put_many(adopted)
                recorded += len(adopted)
        log.info("%s scan of %s: %d file(s), %d to look at%s", why, folder.root, found, queued,
                 f", {recorded} recorded from their sidecars" if recorded else "")

    def _needs_look(self, path: Path, st: os.stat_result, row: RowSignature | None) -> bool:
        """The lifecycle's scan_verdict() for this file, reading its sidecar and full row only
        when the verdict depends on them; and what follows from the answer."""
        policy = (ScanPolicy.NAMED if self._scope.named
                  else ScanPolicy.RUN if self._policy.schedule_retries else ScanPolicy.SCAN)
        facts = ScanFacts(policy, row, st.st_size, st.st_mtime_ns, st.st_ino,
                          now=self._wall_clock())
        # replace() only when a fact differs from its default: this runs for every file of
        # every scan, and a finished file's sidecar is there (benchmarks/, case 4).
        if wants_sidecar_check(facts) and not os.path.exists(sidecar.sidecar_path(path)):
            facts = facts._replace(sidecar_exists=False)
        if wants_record(facts) and (record := self._journal.get(path)) is not None:
            facts = facts._replace(next_attempt=record.next_attempt, error=record.error)
        match scan_verdict(facts):
            case Look():
                return True
            case PassUntil(when):
                self._book.schedule_retry(path, when)  # its backoff stands
            case PassFailed(reason):
                self._book.failed_earlier(path, reason)
            case Pass():
                pass
        return False
