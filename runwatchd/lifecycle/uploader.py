"""Uploading one file: journal "uploading" -> upload -> sidecar -> journal "uploaded"/"to_submit".

The journal row is written before the upload, so a restart knows a sidecar temp may lie beside
the file (processor.py draws the whole order of writes and what a crash at each point leaves).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runwatchd.errors import FileChanged, InputRejected, InvalidFile, NoCredits, RetryableError
from runwatchd.generation.task_sidecar import ensure_task_sidecar
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.facts import FileStat, Uploaded
from runwatchd.lifecycle.failures import Failures
from runwatchd.lifecycle.states import Ending, FailureReason, FileState, Outcome
from runwatchd.runway.client_ref import ClientRef
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

# For a file about to be uploaded, a callback told of each chunk's bytes (or None).
ProgressFor = Callable[[Path], Callable[[int], None] | None]


class Uploader:
    """Uploads files with the client in use and writes their sidecars."""

    def __init__(self, client: ClientRef, store: Store, failures: Failures, *,
                 progress: ProgressFor | None = None) -> None:
        self._client = client
        self._store = store
        self._failures = failures
        self._progress = progress

    def upload(self, path: Path, st: FileStat, *, final_state: FileState,
               attempts: int = 0) -> Uploaded | Ending:
        """Upload `path` (found at version `st`), write its sidecar and record it in
        `final_state` (UPLOADED, or TO_SUBMIT when a rule applies). `attempts`: failed ones
        before, which the backoff grows with. An Ending when it stops short."""
        # Recorded first so a restart knows a sidecar temp may lie beside the file (not over a
        # row that holds a task: only a claim for new content may replace that).
        self._store.put_unless_claimed(FileRecord(
            path=str(path), state=FileState.UPLOADING, size=st.st_size, mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino, attempts=attempts))
        log.info("uploading %s (%s bytes)", path, st.st_size)
        try:
            progress = self._progress(path) if self._progress else None
            result = self._client.current.upload(path, progress=progress)
        except InvalidFile as e:
            return self._failures.invalid(path, st, str(e))
        except FileChanged as e:
            log.info("%s changed while uploading; waiting for it to settle again (%s)", path, e)
            row = self._store.get(path)
            if not os.path.lexists(path) and row is not None and row.state == FileState.UPLOADING:
                self._store.delete(path)  # deleted: nothing to remember (status would show it)
            return Ending(Outcome.RETRY)
        except InputRejected as e:
            return self._failures.invalid(path, st, f"{path.name}: Runway refused the upload: {e}")
        except (RetryableError, NoCredits) as e:  # an account without credits cannot upload
            return self._failures.failed(path, st, f"upload failed: {e}",
                                         FailureReason.UPLOAD_FAILED)
        data = sidecar.build_sidecar(
            path, runway_uri=result.runway_uri, uploaded_at=result.uploaded_at, size=result.size,
            mtime_ns=result.mtime_ns, sha256=result.sha256,
        )
        record = FileRecord(
            path=str(path), state=final_state, size=result.size, mtime_ns=result.mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino, sha256=result.sha256,
            runway_uri=result.runway_uri, uploaded_at=result.uploaded_at.timestamp(),
        )
        unwritten = self.write_sidecar(path, data, record)
        if unwritten is not None:
            return unwritten
        holder = self._store.put_unless_claimed(record)
        if holder is not None:  # another process submitted this very content meanwhile
            ensure_task_sidecar(path, holder)
            return Ending(Outcome.SKIPPED)
        log.info("uploaded %s -> %s", path, result.runway_uri)
        return Uploaded(uri=result.runway_uri, uploaded_at=result.uploaded_at.timestamp(),
                        sha256=result.sha256, size=result.size, mtime_ns=result.mtime_ns,
                        inode=st.st_ino, ctime_ns=st.st_ctime_ns)

    def write_sidecar(self, path: Path, data: dict[str, Any], record: FileRecord) -> Ending | None:
        """Write the sidecar of an upload that `record` describes; None when written, else the
        failure (the upload stays in the journal: written when the file is looked at again)."""
        try:
            sidecar.write_sidecar(path, data)
        except OSError as e:
            return self._failures.sidecar_unwritten(path, record, e)
        return None
