"""How a file fails: its journal row (with the wait before it is tried again), the sidecar when
the failure concerns its generation, one log line, and the Ending that process() returns.

Shared by the processor, the uploader, the submitter and recovery, so each kind of failure is
written one way whoever meets it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from runwatchd.generation.task_sidecar import write_task_sidecar
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.facts import FileStat
from runwatchd.lifecycle.states import Ending, FailureReason, FileState, Outcome, TaskStatus
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

S = FileState


def retry_wait(attempts: int) -> float:
    """The wait before a failed file is tried again, after the client's own retries gave up
    `attempts` times: 30 s doubling to one hour."""
    return min(3600.0, 30.0 * 2.0 ** max(0, attempts - 1))


class Failures:
    """Writes each kind of failure; `backoff(attempts)` is the wait before the next try
    (None: 30 s doubling to one hour)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 backoff: Callable[[int], float] | None = None) -> None:
        self._store = store
        self._clock = clock
        self._backoff = backoff

    def _wait(self, attempts: int) -> float:
        return (self._backoff or retry_wait)(attempts)

    def invalid(self, path: Path, st: FileStat | None, message: str) -> Ending:
        """A permanent problem with the file: recorded and logged once per version."""
        ending = Ending(Outcome.INVALID, FailureReason.INVALID_FILE)
        if st is None:
            try:
                st = FileStat.of(os.stat(path))
            except OSError:
                log.warning("skipped %s", message)
                return ending
        record = self._store.get(path)
        if record and record.state == S.INVALID and record.same_file(
                st.st_size, st.st_mtime_ns, st.st_ino):
            return ending  # reported once already
        self._store.put(FileRecord(
            path=str(path), state=S.INVALID, size=st.st_size, mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino, error=message))
        log.warning("skipped %s", message)
        return ending

    def failed(self, path: Path, st: FileStat | None, message: str, reason: FailureReason, *,
               keep: FileRecord | None = None) -> Ending:
        """A transient failure: tried again after a backoff that grows with each attempt.
        `keep`: the row to write (ours: we hold its claim), else the file's row, if any."""
        record = keep or self._store.get(path) or FileRecord(path=str(path), state=S.FAILED)
        record.state = S.FAILED
        if keep is None and st is not None:
            record.size, record.mtime_ns, record.inode = st.st_size, st.st_mtime_ns, st.st_ino
        record.error = message
        record.attempts += 1
        record.next_attempt = self._clock() + self._wait(record.attempts)
        if keep is not None:
            self._store.put(record)
        else:
            self._store.put_unless_claimed(record)  # never over another version's task row
        log.error("%s: %s (attempt %d; next try in %.0f s)", path, message, record.attempts,
                  self._wait(record.attempts))
        return Ending(Outcome.FAILED, reason)

    def sidecar_unwritten(self, path: Path, record: FileRecord, error: OSError) -> Ending:
        """Uploaded, but the folder is read-only or the disk full: the upload is kept in the
        journal (`record`), so nothing is lost, and the sidecar is written when the file is
        looked at again."""
        why = error.strerror or error
        row = replace(record, state=S.NO_SIDECAR, error=f"cannot write sidecar: {why}",
                      attempts=record.attempts + 1)
        row.next_attempt = self._clock() + self._wait(row.attempts)
        self._store.put_unless_claimed(row)
        log.error("%s: cannot write %s: %s", path, sidecar.sidecar_path(path).name, why)
        return Ending(Outcome.FAILED, FailureReason.SIDECAR_WRITE)

    def attention(self, path: Path, record: FileRecord, why: str) -> Ending:
        """A generation POST may have made a task we do not know: never sent again by itself."""
        record.state = S.ATTENTION
        record.error = f"needs attention: {why}; run `runwatchd retry {path}` to submit again"
        # Sidecar first: until the journal says "attention" the row stays "submitting", which a
        # restart repairs again (temp file included); the other order could leave a stale sidecar.
        write_task_sidecar(path, record, TaskStatus.NEEDS_ATTENTION, failure=record.error)
        self._store.put(record)
        log.error("%s %s", path, record.error)
        return Ending(Outcome.ATTENTION, FailureReason.SUBMIT_UNCERTAIN)

    def task_failed(self, path: Path, base: FileRecord, failure: str, code: str, *,
                    claimed: bool = True) -> Ending:
        """The generation request was refused (`code` says by whom): never sent again by
        itself. `claimed`: `base` holds the submit claim, else it is written only if no other
        process claimed this content meanwhile."""
        base.state, base.task_status, base.failure, base.failure_code = (
            S.TASK_FAILED, TaskStatus.FAILED, failure, code)
        base.error = failure
        if not claimed and self._store.put_unless_claimed(base) is not None:
            return Ending(Outcome.SKIPPED)  # another process submitted this content meanwhile
        write_task_sidecar(path, base, TaskStatus.FAILED, failure=failure, code=code)
        if claimed:  # after the sidecar, as in attention()
            self._store.put(base)
        log.error("generation for %s not submitted: %s", path, failure)
        return Ending(Outcome.INVALID, FailureReason.REJECTED)
