"""How processing a file ends: the outcomes Processor.process() returns, and the daemon's book.

The daemon counts them, and `scan` turns failures into exit 1: OutcomeMixin (mixed into
daemon.Daemon) keeps `failed_paths` (what scan reports), schedules a failed file's retry for when
its backoff ends, and records each file's metrics.
"""

from __future__ import annotations

import heapq
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from runwatchd.lifecycle.states import FAILURE_STATES, Outcome

if TYPE_CHECKING:
    from runwatchd.daemon.core import Daemon

log = logging.getLogger(__name__)

SKIPPED, UPLOADED, SUBMITTED, INVALID, FAILED, RETRY, ATTENTION, AWAITING = (
    Outcome.SKIPPED, Outcome.UPLOADED, Outcome.SUBMITTED, Outcome.INVALID, Outcome.FAILED,
    Outcome.RETRY, Outcome.ATTENTION, Outcome.AWAITING_CREDITS,
)


class OutcomeMixin:
    """The daemon's book of how each file ended, and of the retries that follow."""

    def _after(self: Daemon, path: Path, outcome: str, internal: str | None) -> bool:
        """Record how a file ended (for scan's exit code); True when it goes back to settle."""
        if outcome == "paused":
            return False
        if outcome == AWAITING:  # submitted once credits are back: after a reload or restart
            if self.mode == "scan":
                self.failed_paths[str(path)] = "generation not submitted: no credits left"
            return False
        if outcome == RETRY:
            if self.mode == "scan" and self.pauses.credits_out:
                self.failed_paths[str(path)] = "generation not submitted: no credits left"
                return False
            return True  # it changed while uploading, or generation waits for credits
        record = self.journal.get(path)
        failed = outcome in (FAILED, INVALID, ATTENTION) or (
            outcome == SKIPPED and record is not None and record.state in FAILURE_STATES)
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

    def _schedule_retry(self: Daemon, path: str, when: float) -> None:
        with self._lock:
            if self._retry_at.get(path) == when:
                return
            self._retry_at[path] = when  # an older heap entry for the path becomes stale
            heapq.heappush(self._retry_heap, (when, path))

    def _due_retries(self: Daemon) -> None:
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

    def _task_finished(self: Daemon, path: Path, status: str) -> None:
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

    def _count(self: Daemon, path: Path, outcome: str, uri_before: str | None) -> None:
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
