"""What happens to one settled file: check, upload, sidecar, and (when a rule applies) submit.

The order of writes is what makes a crash at any moment repairable:
    upload -> sidecar -> journal "uploaded"
    journal "submitting" (the intent) -> POST -> journal "running" + task id -> sidecar task
A restart that finds "submitting" knows a POST may have happened and never repeats it blindly.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from runwatchd import media, sidecar
from runwatchd.client import RunwayClient
from runwatchd.errors import (
    FileChanged,
    InputRejected,
    InvalidFile,
    NoCredits,
    RetryableError,
    SubmitUncertain,
)
from runwatchd.journal import FileRecord, Journal
from runwatchd.rules import Rule, RuleResolver, build_request, check_media, rule_fingerprint

log = logging.getLogger(__name__)

URI_LIFETIME = 24 * 3600.0
# A URI this close to its expiry is not sent: the task may sit PENDING/THROTTLED for a while.
URI_MARGIN = 3600.0

# Outcomes of process(); the daemon counts them and `scan` turns "failed"/"invalid" into exit 1.
SKIPPED, UPLOADED, SUBMITTED, INVALID, FAILED, RETRY, ATTENTION = (
    "skipped", "uploaded", "submitted", "invalid", "failed", "retry", "attention",
)


@dataclass
class Job:
    """A settled file and where it was found."""

    path: Path
    root: Path
    resolver: RuleResolver | None


class Processor:
    """Turns a settled file into a sidecar (and a submitted task). Safe to call from many threads."""

    def __init__(
        self,
        client: RunwayClient,
        journal: Journal,
        *,
        follow: Callable[[Path, str, Path], None] | None = None,
        clock: Callable[[], float] = time.time,
        progress: Callable[[Path], Callable[[int], None] | None] | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.follow = follow
        self.clock = clock
        self.progress = progress
        self.credits_paused = threading.Event()

    def process(self, job: Job) -> str:
        path = job.path
        try:
            st = media.check_file(path)
        except InvalidFile as e:
            return self._invalid(path, None, str(e))
        record = self.journal.get(path)
        same = record is not None and record.same_file(st.st_size, st.st_mtime_ns, st.st_ino)
        if record is not None and same and record.state == "invalid":
            return SKIPPED
        rule = job.resolver.rule_for(path) if job.resolver else None
        if rule is not None:
            try:  # a .wav in an image_to_video folder: say so once, upload nothing
                check_media(rule, path, job.root)
            except InvalidFile as e:
                return self._invalid(path, st, str(e))
        data = sidecar.read_sidecar(path)
        matches = data is not None and sidecar.sidecar_matches(data, st, path.name)

        if record is not None and same and record.state in ("running", "succeeded", "task_failed",
                                                             "attention", "submitting"):
            if not matches:  # the user deleted the sidecar: put it back from what we know
                self._write_sidecar_from_record(path, record, rule)
            return SKIPPED
        if matches and (rule is None or "task" in data):
            if record is None or not same:
                self.journal.put(self._record_from_sidecar(path, st, data))
            return SKIPPED

        if matches and not self._uri_stale(data):
            uri, uploaded_at = data["runway_uri"], _parse_time(data["uploaded_at"])
            sha, size, mtime_ns = data["file"]["sha256"], st.st_size, st.st_mtime_ns
        else:
            outcome = self._upload(path, st)
            if isinstance(outcome, str):
                return outcome
            uri, uploaded_at, sha = outcome.runway_uri, outcome.uploaded_at.timestamp(), outcome.sha256
            size, mtime_ns = outcome.size, outcome.mtime_ns
        if rule is None:
            return UPLOADED
        return self.submit(job, rule, uri=uri, uploaded_at=uploaded_at, sha256=sha,
                           size=size, mtime_ns=mtime_ns, inode=st.st_ino, ctime_ns=st.st_ctime_ns)

    # -- upload --------------------------------------------------------------------------------

    def _upload(self, path: Path, st: os.stat_result):
        log.info("uploading %s (%s bytes)", path, st.st_size)
        try:
            result = self.client.upload(path, progress=self.progress(path) if self.progress else None)
        except InvalidFile as e:
            return self._invalid(path, st, str(e))
        except FileChanged as e:
            log.info("%s changed while uploading; waiting for it to settle again (%s)", path, e)
            return RETRY
        except InputRejected as e:
            return self._invalid(path, st, f"{path.name}: Runway refused the upload: {e}")
        except RetryableError as e:
            return self._failed(path, st, f"upload failed: {e}")
        data = sidecar.build_sidecar(
            path, runway_uri=result.runway_uri, uploaded_at=result.uploaded_at, size=result.size,
            mtime_ns=result.mtime_ns, sha256=result.sha256,
        )
        record = FileRecord(
            path=str(path), state="uploaded", size=result.size, mtime_ns=result.mtime_ns,
            ctime_ns=st.st_ctime_ns, inode=st.st_ino, sha256=result.sha256,
            runway_uri=result.runway_uri, uploaded_at=result.uploaded_at.timestamp(),
        )
        if not self._try_write_sidecar(path, data, record):
            return FAILED
        self.journal.put(record)
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
            self.journal.put(record)
            log.error("%s: cannot write %s: %s", path, sidecar.sidecar_path(path).name,
                      e.strerror or e)
            return False

    # -- generation ----------------------------------------------------------------------------

    def submit(self, job: Job, rule: Rule, *, uri: str, uploaded_at: float, sha256: str, size: int,
               mtime_ns: int, inode: int, ctime_ns: int) -> str:
        path = job.path
        fp = rule_fingerprint(rule)
        record = self.journal.get(path)
        if (record is not None and record.sha256 == sha256 and record.rule_fp == fp
                and record.state in ("submitting", "running", "succeeded", "task_failed",
                                     "attention")):
            return SKIPPED  # at most once per content and rule
        base = FileRecord(
            path=str(path), state="submitting", size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns,
            inode=inode, sha256=sha256, runway_uri=uri, uploaded_at=uploaded_at, rule_fp=fp,
            endpoint=rule.endpoint,
        )
        if self.credits_paused.is_set():
            base.state, base.error = "awaiting_credits", "no credits left for generation"
            self.journal.put(base)
            return RETRY
        try:
            body = build_request(rule, path, uri, job.root)
        except InvalidFile as e:
            return self._task_failed(path, base, rule, str(e), "RUNWATCHD.INPUT")
        self.journal.put(base)  # the intent, committed before the POST
        try:
            answer = self.client.create_task(rule.endpoint, body)
        except SubmitUncertain as e:
            base.state, base.error = "attention", f"a task may have been created: {e}"
            self.journal.put(base)
            self._write_task(path, base, rule, "NEEDS_ATTENTION", failure=base.error)
            log.error("%s needs attention: %s; run `runwatchd retry %s` to submit again",
                      path, base.error, path)
            return ATTENTION
        except NoCredits as e:
            self.credits_paused.set()
            base.state, base.error = "awaiting_credits", str(e)
            self.journal.put(base)
            log.error("generation paused: %s (uploads go on)", e)
            return RETRY
        except InputRejected as e:
            return self._task_failed(path, base, rule, str(e), "RUNWATCHD.REJECTED")
        except RetryableError as e:  # create_task only lets these out when nothing was sent
            base.state = "uploaded"
            self.journal.put(base)
            return self._failed(path, None, f"submit failed: {e}", keep=base)
        base.state, base.task_id, base.task_status, base.error = "running", answer["id"], "PENDING", None
        self.journal.put(base)
        self._write_task(path, base, rule, "PENDING")
        log.info("submitted %s %s for %s", rule.endpoint, base.task_id, path)
        if self.follow:
            self.follow(path, base.task_id, rule.output_path(job.root))
        return SUBMITTED

    def _task_failed(self, path: Path, base: FileRecord, rule: Rule, failure: str, code: str) -> str:
        base.state, base.task_status, base.failure, base.failure_code = (
            "task_failed", "FAILED", failure, code)
        base.error = failure
        self.journal.put(base)
        self._write_task(path, base, rule, "FAILED", failure=failure, code=code)
        log.error("generation for %s not submitted: %s", path, failure)
        return INVALID

    def _write_task(self, path: Path, record: FileRecord, rule: Rule | None, status: str, *,
                    failure: str | None = None, code: str | None = None) -> None:
        write_task_sidecar(path, record, status, rule_name=rule.name if rule else None,
                           failure=failure, code=code)

    def _write_sidecar_from_record(self, path: Path, record: FileRecord, rule: Rule | None) -> None:
        self._write_task(path, record, rule, record.task_status or "NEEDS_ATTENTION",
                         failure=record.failure or record.error, code=record.failure_code)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _record_from_sidecar(self, path: Path, st: os.stat_result, data: dict) -> FileRecord:
        task = data.get("task") or {}
        return FileRecord(
            path=str(path), state="succeeded" if task.get("status") == "SUCCEEDED" else (
                "task_failed" if task else "uploaded"),
            size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, inode=st.st_ino,
            sha256=data["file"]["sha256"], runway_uri=data["runway_uri"],
            uploaded_at=_parse_time(data["uploaded_at"]), task_id=task.get("id"),
            task_status=task.get("status"), endpoint=task.get("endpoint"),
            outputs=list(task.get("outputs") or []),
        )

    def _uri_stale(self, data: dict) -> bool:
        return _parse_time(data["uploaded_at"]) + URI_LIFETIME - URI_MARGIN <= self.clock()

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
        if keep is None:
            record.state = "failed"
            if st is not None:
                record.size, record.mtime_ns, record.inode = st.st_size, st.st_mtime_ns, st.st_ino
        record.error = reason
        record.attempts += 1
        record.next_attempt = self.clock() + _backoff(record.attempts)
        self.journal.put(record)
        log.error("%s: %s (attempt %d; next try in %.0f s)", path, reason, record.attempts,
                  _backoff(record.attempts))
        return FAILED


def write_task_sidecar(path: Path, record: FileRecord, status: str, *, rule_name: str | None,
                       failure: str | None = None, code: str | None = None) -> None:
    """Rewrite the sidecar with the task part as the journal knows it."""
    if rule_name is None:  # the follower does not know the rule: keep what the sidecar says
        previous = sidecar.read_sidecar(path) or {}
        rule_name = (previous.get("task") or {}).get("rule")
    task = {
        "id": record.task_id, "endpoint": record.endpoint, "rule": rule_name, "status": status,
        "outputs": list(record.outputs), "failure": failure, "failure_code": code,
    }
    data = sidecar.build_sidecar(
        path, runway_uri=record.runway_uri or "", uploaded_at=datetime.fromtimestamp(
            record.uploaded_at or 0, tz=timezone.utc),
        size=record.size or 0, mtime_ns=record.mtime_ns or 0, sha256=record.sha256 or "",
        task=task,
    )
    try:
        sidecar.write_sidecar(path, data)
    except OSError as e:
        log.error("%s: cannot write sidecar: %s (state kept in the journal)", path, e.strerror or e)


def _backoff(attempts: int) -> float:
    """Per-file wait after the client's own retries gave up: 30 s doubling to one hour."""
    return min(3600.0, 30.0 * 2 ** max(0, attempts - 1))


def _parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
