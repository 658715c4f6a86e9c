"""What happens to one settled file: check, upload, sidecar, and (when a rule applies) submit.

The order of writes is what makes a crash at any moment repairable, with at most one generation
per file content (journal states: journal.py):

    journal "uploading" -> upload -> sidecar -> journal "uploaded" (no rule) or "to_submit"
    journal "submitting" (the intent, claim_submit) -> POST -> journal "running" + task id
    -> sidecar task PENDING -> follower (tasks.py): status, downloads, final status

    a crash after ...          the restart finds ...   and (recover(), then process()) ...
    the upload, before sidecar "uploading"             removes our temps; uploads again
    the sidecar, before intent "uploading"/"to_submit" reuses the sidecar's URI; submits
    the intent (POST or not)   "submitting"            marks it "needs attention"; never resubmits
    the task id, before sidecar "running"              writes the sidecar's task; follows it
    during a download          "running"               removes our temps; polls; downloads again

A URI is never sent when it is older than 24 h less a margin: the file is uploaded again first.
The submit step lives in submit.py, recover() in recovery.py; both are mixed into Processor.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runwatchd.runway import media
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient, UploadResult
from runwatchd.errors import (
    FileChanged,
    InputRejected,
    InvalidFile,
    NoCredits,
    RetryableError,
)
from runwatchd.lifecycle.states import TASK_STATES, Ending, Outcome
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore
from runwatchd.daemon.outcome_book import FAILED, INVALID, RETRY, SKIPPED, UPLOADED
from runwatchd.lifecycle.recovery import RecoveryMixin
from runwatchd.generation.rules import Rule, RuleResolver, check_media
from runwatchd.generation.submitter import SubmitMixin, output_dir_for
from runwatchd.generation.follower import NEEDS_ATTENTION

log = logging.getLogger(__name__)

URI_LIFETIME = 24 * 3600.0
# A URI this close to its expiry is not sent: the task may sit PENDING/THROTTLED for a while.
URI_MARGIN = 3600.0

FollowFn = Callable[[Path, str, Path], None]


@dataclass
class Job:
    """A settled file and where it was found."""

    path: Path
    root: Path
    resolver: RuleResolver | None


class Processor(SubmitMixin, RecoveryMixin):
    """Turns a settled file into a sidecar (and a submitted task). Safe to call from many
    threads for different files; the daemon never processes one path twice at once."""

    def __init__(
        self,
        client: RunwayClient,
        journal: SqliteStore,
        *,
        follow: FollowFn | None = None,
        clock: Callable[[], float] = time.time,
        progress: Callable[[Path], Callable[[int], None] | None] | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.follow = follow
        self.clock = clock
        self.progress = progress
        # Set on NoCredits: generation waits (files go to "awaiting_credits"), uploads go on.
        self.credits_paused = threading.Event()
        self._output_dirs: set[Path] | None = None
        self._output_lock = threading.Lock()

    def is_output(self, path: Path) -> bool:
        """True for a file inside a folder any generation was downloaded into, also one that
        a rule no longer names (after a rules file changed output_dir): never new media."""
        with self._output_lock:
            if self._output_dirs is None:
                self._output_dirs = {Path(d) for d in self.journal.output_dirs()}
            # Asked for every file of every scan: with no outputs yet, skip building parents.
            return bool(self._output_dirs) and any(
                parent in self._output_dirs for parent in path.parents)

    def _remember_output_dir(self, directory: Path) -> None:
        with self._output_lock:
            if self._output_dirs is not None:
                self._output_dirs.add(directory)

    def process(self, job: Job) -> Ending:
        """Take one settled file as far as it goes now; how it ended."""
        return Ending(Outcome(self._process(job)))

    def _process(self, job: Job) -> str:
        path = job.path
        if self.is_output(path):
            return SKIPPED  # an event the folder filter could not know was ours
        try:
            st = media.check_file(path)
        except InvalidFile as e:
            return self._invalid(path, None, str(e))
        record = self.journal.get(path)
        same = record is not None and record.same_file(st.st_size, st.st_mtime_ns, st.st_ino)
        if (record is not None and same and record.state == "invalid"
                and record.ctime_ns == st.st_ctime_ns):
            return SKIPPED  # a chmod changes only ctime: an unreadable file may be readable now
        if record is not None and same and record.state in TASK_STATES:
            self.ensure_task_sidecar(path, record)
            return SKIPPED
        if record is not None and not same and self._same_content(path, st, record):
            return SKIPPED
        forced = record is not None and same and record.state == "retry"
        broken = job.resolver.broken_rules_file(path) if job.resolver else None
        if broken is not None:
            return self._failed(path, st, f"waiting: {broken}")
        rule = job.resolver.rule_for(path) if job.resolver else None
        if rule is not None:
            try:  # a .wav in an image_to_video folder: say so once, upload nothing
                check_media(rule, path, job.root)
            except InvalidFile as e:
                return self._invalid(path, st, str(e))
        if (record is not None and same and record.state == "no_sidecar" and record.runway_uri
                and record.sha256 and record.uploaded_at
                and not self._uri_stale(record.uploaded_at)):
            # Uploaded, but the folder was read-only or the disk full: write the sidecar from
            # the journal, without uploading again.
            data = sidecar.build_sidecar(
                path, runway_uri=record.runway_uri, size=st.st_size, mtime_ns=st.st_mtime_ns,
                uploaded_at=datetime.fromtimestamp(record.uploaded_at, UTC), sha256=record.sha256)
            if not self._try_write_sidecar(path, data, record):
                return FAILED
        else:
            data = sidecar.read_sidecar(path)
        matches = data is not None and sidecar.sidecar_matches(data, st, path.name)
        if data is not None and matches and "task" in data and not forced:
            if record is None or not same:  # a new state dir, or copied with its sidecar
                self._adopt_sidecar(job, st, data, rule)
            return SKIPPED
        if data is not None and matches and rule is None:
            if record is None or not same or record.state != "uploaded":
                self.journal.put(self._record_from_sidecar(path, st, data, "uploaded"))
            return SKIPPED
        if data is not None and matches and not self._uri_stale(data["uploaded_at"]):
            uri, uploaded_at = data["runway_uri"], _parse_time(data["uploaded_at"])
            sha, size, mtime_ns = data["file"]["sha256"], st.st_size, st.st_mtime_ns
        else:
            outcome = self._upload(path, st, rule, record if same else None)
            if isinstance(outcome, str):
                return outcome
            uri, uploaded_at = outcome.runway_uri, outcome.uploaded_at.timestamp()
            sha, size, mtime_ns = outcome.sha256, outcome.size, outcome.mtime_ns
        if rule is None:
            return UPLOADED
        return self.submit(job, rule, uri=uri, uploaded_at=uploaded_at, sha256=sha,
                           size=size, mtime_ns=mtime_ns, inode=st.st_ino, ctime_ns=st.st_ctime_ns)

    # -- upload --------------------------------------------------------------------------------

    def _upload(self, path: Path, st: os.stat_result, rule: Rule | None,
                previous: FileRecord | None) -> UploadResult | str:
        # Recorded first so a restart knows a sidecar temp may lie beside the file (not over a
        # row that holds a task: only a claim for new content may replace that).
        self.journal.put_unless_claimed(FileRecord(
            path=str(path), state="uploading", size=st.st_size, mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino,
            attempts=previous.attempts if previous else 0))
        log.info("uploading %s (%s bytes)", path, st.st_size)
        try:
            progress = self.progress(path) if self.progress else None
            result = self.client.upload(path, progress=progress)
        except InvalidFile as e:
            return self._invalid(path, st, str(e))
        except FileChanged as e:
            log.info("%s changed while uploading; waiting for it to settle again (%s)", path, e)
            row = self.journal.get(path)
            if not os.path.lexists(path) and row is not None and row.state == "uploading":
                self.journal.delete(path)  # deleted: nothing to remember (status would show it)
            return RETRY
        except InputRejected as e:
            return self._invalid(path, st, f"{path.name}: Runway refused the upload: {e}")
        except (RetryableError, NoCredits) as e:  # an account without credits cannot upload
            return self._failed(path, st, f"upload failed: {e}")
        data = sidecar.build_sidecar(
            path, runway_uri=result.runway_uri, uploaded_at=result.uploaded_at, size=result.size,
            mtime_ns=result.mtime_ns, sha256=result.sha256,
        )
        record = FileRecord(
            path=str(path), state="uploaded" if rule is None else "to_submit", size=result.size,
            mtime_ns=result.mtime_ns, ctime_ns=st.st_ctime_ns, inode=st.st_ino,
            sha256=result.sha256, runway_uri=result.runway_uri,
            uploaded_at=result.uploaded_at.timestamp(),
        )
        if not self._try_write_sidecar(path, data, record):
            return FAILED
        holder = self.journal.put_unless_claimed(record)
        if holder is not None:  # another process submitted this very content meanwhile
            self.ensure_task_sidecar(path, holder)
            return SKIPPED
        log.info("uploaded %s -> %s", path, result.runway_uri)
        return result

    def _try_write_sidecar(self, path: Path, data: dict, record: FileRecord) -> bool:
        try:
            sidecar.write_sidecar(path, data)
            return True
        except OSError as e:
            # Read-only folder or full disk: the upload is kept in the journal, so nothing is lost,
            # and the sidecar is written when the file is looked at again.
            record.state, record.error = "no_sidecar", f"cannot write sidecar: {e.strerror or e}"
            record.attempts += 1
            record.next_attempt = self.clock() + _backoff(record.attempts)
            self.journal.put_unless_claimed(record)
            log.error("%s: cannot write %s: %s", path, sidecar.sidecar_path(path).name,
                      e.strerror or e)
            return False

    # -- bookkeeping ---------------------------------------------------------------------------

    def _same_content(self, path: Path, st: os.stat_result, record: FileRecord) -> bool:
        """A touched (or rewritten, identical) file whose content already has its generation:
        take on the new version without uploading or submitting again."""
        if record.state not in TASK_STATES or record.state == "submitting":
            return False
        if record.size != st.st_size or not record.sha256:
            return False
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return False
        if digest != record.sha256:
            return False
        record.mtime_ns, record.ctime_ns, record.inode = st.st_mtime_ns, st.st_ctime_ns, st.st_ino
        self.journal.put(record)
        self.ensure_task_sidecar(path, record)
        log.info("%s changed on disk but not in content; its generation stands", path)
        return True

    def _adopt_sidecar(self, job: Job, st: os.stat_result, data: dict, rule: Rule | None) -> None:
        """Believe a matching sidecar that has a task (the journal lost it, or never had it)."""
        path = job.path
        task = data["task"]
        status = task.get("status")
        state = {"SUCCEEDED": "succeeded", "FAILED": "task_failed", "CANCELLED": "task_failed",
                 NEEDS_ATTENTION: "attention"}.get(status, "attention")
        if state == "attention" and status != NEEDS_ATTENTION and task.get("id"):
            state = "running"  # PENDING, THROTTLED, RUNNING: follow it again
        record = self._record_from_sidecar(path, st, data, state)
        record.endpoint, record.rule_name = task.get("endpoint"), task.get("rule")
        record.task_id, record.task_status = task.get("id"), status
        record.outputs = list(task.get("outputs") or [])
        record.failure, record.failure_code = task.get("failure"), task.get("failure_code")
        if state == "attention":
            record.error = task.get("failure") or "needs attention"
        if state == "running" and rule is not None:
            record.output_dir = str(output_dir_for(rule, path, job.root))
        self.journal.put(record)
        if state == "running" and self.follow and record.task_id:
            self.follow(path, record.task_id, Path(record.output_dir or path.parent))

    def adoptable(self, path: Path, st: os.stat_result, rule: Rule | None) -> FileRecord | None:
        """For the catch-up scan, a file the journal has no row for: the row to record when its
        sidecar already describes it and no rule wants a generation from it (a new state dir,
        files uploaded by `runwatchd upload`, a restored backup). No settle wait is needed: its
        size and mtime are still those of the upload. None: it goes the usual way (settle, then
        process(), which would reach the same answer 100,000 times slower)."""
        if rule is not None:
            return None
        data = sidecar.read_sidecar(path)
        if data is None or "task" in data or not sidecar.sidecar_matches(data, st, path.name):
            return None
        return self._record_from_sidecar(path, st, data, "uploaded")

    def _record_from_sidecar(self, path: Path, st: os.stat_result, data: dict,
                             state: str) -> FileRecord:
        return FileRecord(
            path=str(path), state=state, size=st.st_size, mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino, sha256=data["file"]["sha256"],
            runway_uri=data["runway_uri"], uploaded_at=_parse_time(data["uploaded_at"]),
        )

    def _uri_stale(self, uploaded_at: str | float) -> bool:
        when = _parse_time(uploaded_at) if isinstance(uploaded_at, str) else uploaded_at
        return when + URI_LIFETIME - URI_MARGIN <= self.clock()

    def _invalid(self, path: Path, st: os.stat_result | None, reason: str) -> str:
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                log.warning("skipped %s", reason)
                return INVALID
        record = self.journal.get(path)
        if record and record.state == "invalid" and record.same_file(
                st.st_size, st.st_mtime_ns, st.st_ino):
            return INVALID  # reported once already
        self.journal.put(FileRecord(
            path=str(path), state="invalid", size=st.st_size, mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino, error=reason))
        log.warning("skipped %s", reason)
        return INVALID

    def _failed(self, path: Path, st: os.stat_result | None, reason: str, *,
                keep: FileRecord | None = None) -> str:
        record = keep or self.journal.get(path) or FileRecord(path=str(path), state="failed")
        record.state = "failed"
        if keep is None and st is not None:
            record.size, record.mtime_ns, record.inode = st.st_size, st.st_mtime_ns, st.st_ino
        record.error = reason
        record.attempts += 1
        record.next_attempt = self.clock() + _backoff(record.attempts)
        if keep is not None:
            self.journal.put(record)  # ours: we hold the claim
        else:
            self.journal.put_unless_claimed(record)  # never over another version's task row
        log.error("%s: %s (attempt %d; next try in %.0f s)", path, reason, record.attempts,
                  _backoff(record.attempts))
        return FAILED


def _backoff(attempts: int) -> float:
    """Per-file wait after the client's own retries gave up: 30 s doubling to one hour."""
    return min(3600.0, 30.0 * 2 ** max(0, attempts - 1))


def _parse_time(text: str) -> float:
    return sidecar.parse_time(text).timestamp()
