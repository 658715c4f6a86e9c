"""The book of how each file ended, and of the retries that follow.

The daemon counts the outcomes (status line, status.json, the shutdown summary); `scan` reports
`failed_paths()` and exits 1 when there are any; a failed file's retry is scheduled for when its
backoff ends (the journal row's next_attempt, wall-clock time); each file's metrics are recorded.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runwatchd.daemon.policy import RunPolicy
from runwatchd.lifecycle.states import FAILURE_STATES, Ending, Outcome
from runwatchd.store.base import Store

if TYPE_CHECKING:  # only a type here: the book must not load prometheus_client for a scan
    from runwatchd.service.metrics import Metrics

log = logging.getLogger(__name__)


NO_CREDITS = "generation not submitted: no credits left"


class OutcomeBook:
    """Outcome counts, the failures `scan` reports, and the retry queue.

    Its lock guards `_counts`, `_failed`, `_retry_heap` and `_retry_at`. Workers take it (record),
    the task follower's threads (task_finished), the main loop (due_retries, the views) and scans
    (schedule_retry, failed_earlier); it is never held while calling out (store, metrics)."""

    def __init__(
        self,
        journal: Store,
        policy: RunPolicy,
        *,
        credits_out: Callable[[], bool] = lambda: False,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
        held_delay: float = 10.0,
    ) -> None:
        self._journal = journal
        self._policy = policy
        self._credits_out = credits_out
        self._metrics = metrics
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._failed: dict[str, str] = {}  # final failures: path -> why (scan prints them)
        self._retry_heap: list[tuple[float, str]] = []
        self._retry_at: dict[str, float] = {}  # path -> its live entry's time in _retry_heap
        # Files another process worked on when we looked: looked at again after `held_delay`.
        self._held_delay = held_delay
        self._held: set[str] = set()

    # -- views -----------------------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        """How many files ended each way so far (a copy; missing outcomes count 0)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def records_metrics(self) -> bool:
        """True when file_metrics() records anything (the daemon looks up a row before)."""
        return self._metrics is not None

    def held(self) -> bool:
        """True while a file another process worked on waits to be looked at again (a scan
        waits for it: the other process may not finish it)."""
        with self._lock:
            return bool(self._held)

    def failed_paths(self) -> dict[str, str]:
        """The files that did not end well, with why (a copy)."""
        with self._lock:
            return dict(self._failed)

    # -- recording -------------------------------------------------------------------------------

    def record(self, path: Path, ending: Ending, internal: str | None = None) -> bool:
        """Count how a file ended and remember failures (for scan's exit code); True when the
        file goes back to settle. `internal`: the message of an unexpected error."""
        outcome = ending.outcome
        with self._lock:
            self._counts[outcome] += 1
            self._held.discard(str(path))
        if outcome is Outcome.HELD:
            with self._lock:
                self._held.add(str(path))
            self.schedule_retry(path, self._wall_clock() + self._held_delay)
            return False
        if outcome is Outcome.PAUSED:
            return False
        if outcome is Outcome.AWAITING_CREDITS:  # submitted once credits are back (reload)
            if self._policy.report_failures:
                self._fail(path, NO_CREDITS)
            return False
        if outcome is Outcome.RETRY:
            if self._policy.report_failures and self._credits_out():
                self._fail(path, NO_CREDITS)
                return False
            return True  # it changed while uploading, or generation waits for credits
        record = self._journal.get(path)
        failed = outcome in (Outcome.FAILED, Outcome.INVALID, Outcome.ATTENTION) or (
            outcome is Outcome.SKIPPED and record is not None and record.state in FAILURE_STATES)
        if not failed:
            self._clear(path)
        elif outcome is Outcome.INVALID and record is None and not path.exists():
            self._clear(path)  # deleted before its turn: nothing to report
        else:
            self._fail(path, internal or (record.error if record and record.error else outcome))
            if (outcome is Outcome.FAILED and self._policy.schedule_retries and record
                    and record.next_attempt):
                self.schedule_retry(path, record.next_attempt)
        return False

    def failed_earlier(self, path: Path, why: str) -> None:
        """A scan found a file that failed before and did not change since: not retried, but
        no success either (`why` says so: lifecycle.decide.PassFailed)."""
        self._fail(path, why)

    def task_finished(self, path: Path, status: str) -> None:
        """A followed generation reached its final status."""
        if status == "SUCCEEDED":
            self._clear(path)
        else:
            record = self._journal.get(path)
            why = record.failure if record and record.failure else None
            self._fail(path, f"generation {status}" + (f": {why}" if why else ""))
        with self._lock:
            self._counts[Outcome.SUCCEEDED if status == "SUCCEEDED" else Outcome.TASK_FAILED] += 1
        if self._metrics is not None:
            self._metrics.task_finished(status, path)

    def file_metrics(self, path: Path, ending: Ending, uri_before: str | None) -> None:
        """Metrics for one processed file; a new runway:// URI in its journal row means it was
        uploaded by this job (a fresh sidecar needs no upload, a stale URI needs one)."""
        if self._metrics is None:
            return
        try:
            record = self._journal.get(path)
            uploaded = bool(record and record.runway_uri and record.runway_uri != uri_before)
            self._metrics.file_ended(
                ending, uploaded_bytes=(record.size or 0) if record and uploaded else None)
        except Exception:
            log.exception("recording metrics for %s failed", path)

    def _fail(self, path: Path, why: str) -> None:
        with self._lock:
            self._failed[str(path)] = why

    def _clear(self, path: Path) -> None:
        with self._lock:
            self._failed.pop(str(path), None)

    # -- retries ---------------------------------------------------------------------------------

    def schedule_retry(self, path: Path, when: float) -> None:
        """Look at `path` again at `when` (wall-clock time); a later call for the same path
        replaces the earlier time."""
        key = str(path)
        with self._lock:
            if self._retry_at.get(key) == when:
                return
            self._retry_at[key] = when  # an older heap entry for the path becomes stale
            heapq.heappush(self._retry_heap, (when, key))

    def due_retries(self) -> list[Path]:
        """The files whose retry time has come, earliest first (each returned once)."""
        now = self._wall_clock()
        due: list[Path] = []
        with self._lock:
            while self._retry_heap and self._retry_heap[0][0] <= now:
                when, key = heapq.heappop(self._retry_heap)
                if self._retry_at.get(key) == when:
                    del self._retry_at[key]
                    self._held.discard(key)  # the caller makes it a candidate now
                    due.append(Path(key))
        return due

    def next_retry_in(self) -> float | None:
        """Seconds until the earliest retry is due (0 when overdue), None when none waits."""
        with self._lock:
            if not self._retry_heap:
                return None
            first = self._retry_heap[0][0]
        return max(0.0, first - self._wall_clock())
