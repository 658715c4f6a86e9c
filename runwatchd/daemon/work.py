"""A settled file's turn: the last check before a worker takes it (admit, main loop), then the
worker's part (run, pool thread): lease it, process it, book how it ended.

    admit: folder still watched and available, file unchanged since it settled -> Job
    run:   WorkClaims.claim -> FileProcessor.process -> WorkClaims.done -> Scheduler.finish
           -> OutcomeBook.record (-> a candidate again: a retry, or a change while in flight)

A file another process works on ends HELD (looked at again later); a 401 pauses all work; a
store outage puts the file back at the front of the queue (StoreOutage holds new work meanwhile).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from runwatchd.daemon.claims import WorkClaims
from runwatchd.daemon.folder_set import FolderSet
from runwatchd.daemon.outage import StoreOutage
from runwatchd.daemon.outcome_book import OutcomeBook
from runwatchd.daemon.scheduler import Settled
from runwatchd.daemon.upload_meter import UploadMeter
from runwatchd.errors import KeyRejected, StoreUnavailable
from runwatchd.lifecycle.processor import FileProcessor, Job
from runwatchd.lifecycle.states import Ending, FailureReason, Outcome
from runwatchd.service.logs import log_context
from runwatchd.store.base import Store
from runwatchd.watch.folders import Folder
from runwatchd.watch.settle import still_matches

log = logging.getLogger(__name__)


class FileWork:
    """Admits settled files and runs them on the scheduler's workers (it owns no state: each
    collaborator owns its own)."""

    def __init__(self, *, journal: Store, processor: FileProcessor, claims: WorkClaims,
                 book: OutcomeBook, folders: FolderSet, uploads: UploadMeter,
                 outage: StoreOutage, followed: Callable[[], set[Path]],
                 candidate: Callable[[Path, Folder], None],
                 finish: Callable[[Path, Settled | None], bool],
                 key_rejected: Callable[[KeyRejected], None]) -> None:
        self._journal = journal
        self._processor = processor
        self._claims = claims
        self._book = book
        self._folders = folders
        self._uploads = uploads
        self._outage = outage
        self._followed = followed
        self._candidate = candidate
        self._key_rejected = key_rejected
        self._finish = finish  # Scheduler.finish(path, requeue)

    def admit(self, item: Settled) -> Job | None:
        """A settled file's last check before a worker takes it (main loop)."""
        path, folder = item.path, item.folder
        if folder not in self._folders:
            return None  # its folder was removed by a reload
        if folder.state == "unavailable":
            # Its mount is gone: failing the file would only flood the log. The rescan that
            # follows the folder's return finds it again.
            log.debug("%s: folder unavailable; leaving it for the rescan", path)
            return None
        if item.sig is not None and not still_matches(path, item.sig):
            self._candidate(path, folder)  # written to while it waited for a worker
            return None
        return Job(path=path, root=folder.root, resolver=folder.resolver)

    def run(self, job: Job, item: Settled) -> None:
        """One file on a worker thread: process it, then book how it ended."""
        path, internal, before = job.path, None, None
        try:
            before = self._journal.get(path) if self._book.records_metrics else None
            with log_context(path=str(path)):  # JSON lines of this file's way name it
                ending = self._claimed(job)
        except KeyRejected as e:
            self._key_rejected(e)
            ending = Ending(Outcome.PAUSED, FailureReason.KEY_REJECTED)
        except StoreUnavailable as e:
            self._outage.lost(e)
            ending = Ending(Outcome.PAUSED)
        except Exception as e:  # a bug must cost one file, not the daemon
            log.exception("unexpected error processing %s", path)
            ending = Ending(Outcome.FAILED, FailureReason.INTERNAL_ERROR)
            internal = f"internal error: {e}"
        self._uploads.forget(path)
        paused = ending.outcome is Outcome.PAUSED
        dirty = self._finish(path, Settled(path, item.folder) if paused else None)
        try:
            again = self._book.record(path, ending, internal)
        except StoreUnavailable as e:
            self._outage.lost(e)
            again = True
        except Exception:
            log.exception("bookkeeping for %s failed", path)
            again = False
        # A scan or event while it was in flight: only a real change makes it a candidate again
        # (else a scan during a failing upload would cut its backoff short).
        changed = dirty and not paused and (item.sig is None or not still_matches(path, item.sig))
        if again or changed:
            self._candidate(path, item.folder)
        if ending.outcome is not Outcome.HELD:  # another process's upload is not ours to count
            self._book.file_metrics(path, ending, before.runway_uri if before else None)

    def _claimed(self, job: Job) -> Ending:
        """Process a file under this process's lease; HELD when another process works on it."""
        holder = self._claims.claim(job.path)
        if holder is not None:
            log.debug("%s: %s works on it", job.path, holder)
            return Ending(Outcome.HELD)
        try:
            return self._processor.process(job)
        finally:
            try:
                self._claims.done(job.path, keep=job.path in self._followed())
            except StoreUnavailable:
                pass  # the lease expires; the outage was told by the call that failed first
