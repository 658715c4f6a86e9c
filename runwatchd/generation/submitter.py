"""Submitting a file's generation: at most once per file content, and the task sidecar.

The journal row is claimed ("submitting", the intent) before the POST, so a crash between the
two is found at the next start and marked "needs attention" instead of being sent again
(pipeline.py draws the whole order of writes). Mixed into pipeline.Processor.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from runwatchd.lifecycle import sidecar
from runwatchd.errors import (
    InputRejected,
    InvalidFile,
    KeyRejected,
    NoCredits,
    RetryableError,
    SubmitUncertain,
)
from runwatchd.store.record import FileRecord
from runwatchd.daemon.outcome_book import ATTENTION, AWAITING, INVALID, SKIPPED, SUBMITTED
from runwatchd.generation.rules import Rule, build_request, rule_fingerprint
from runwatchd.generation.follower import NEEDS_ATTENTION, sidecar_status, write_task_sidecar

if TYPE_CHECKING:
    from runwatchd.lifecycle.processor import Job, Processor

log = logging.getLogger(__name__)


def output_dir_for(rule: Rule, path: Path, root: Path) -> Path:
    """Where the outputs of `path` go: the rule's output_dir, mirroring the subfolders between
    the rule's base (its rules file's folder, or the watched folder) and the file, so that
    a/shot.png and b/shot.png do not both become renders/shot.mp4."""
    out = rule.output_path(root)
    try:
        rel = path.parent.relative_to(rule.base_dir or root)
    except ValueError:
        return out
    return out / rel if rel.parts else out


class SubmitMixin:
    """Processor's generation step: submit(), and the sidecar that records a task."""

    def submit(self: Processor, job: Job, rule: Rule, *, uri: str, uploaded_at: float,
               sha256: str, size: int, mtime_ns: int, inode: int, ctime_ns: int) -> str:
        """Submit the rule's generation for this file content, at most once (claim_submit).
        `uri` must be fresh: process() uploads again when the sidecar's URI is near expiry."""
        path = job.path
        base = FileRecord(
            path=str(path), state="to_submit", size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns,
            inode=inode, sha256=sha256, runway_uri=uri, uploaded_at=uploaded_at,
            rule_fp=rule_fingerprint(rule), endpoint=rule.endpoint, rule_name=rule.name,
            output_dir=str(output_dir_for(rule, path, job.root)),
        )
        if self.credits_paused.is_set():
            base.state, base.error = "awaiting_credits", "waiting for credits to submit"
            return AWAITING if self.journal.put_unless_claimed(base) is None else SKIPPED
        try:
            body = build_request(rule, path, uri, job.root)
        except InvalidFile as e:
            return self._task_failed(path, base, f"{e}; fix it, then run `runwatchd retry "
                                                 f"{path}`", "RUNWATCHD.INPUT", claimed=False)
        self._remember_output_dir(Path(base.output_dir or path.parent))
        holder = self.journal.claim_submit(base)  # the intent, committed before the POST
        if holder is not None:
            log.info("%s already has a generation (%s, task %s); not submitting again",
                     path, holder.state, holder.task_id)
            self.ensure_task_sidecar(path, holder)
            return SKIPPED
        try:
            answer = self.client.create_task(rule.endpoint, body)
        except SubmitUncertain as e:
            return self._attention(path, base, f"a task may have been created: {e}")
        except NoCredits as e:
            self.credits_paused.set()
            base.state, base.error = "awaiting_credits", f"waiting for credits: {e}"
            self.journal.put(base)
            log.error("generation paused: %s (uploads go on; reload after buying credits)", e)
            return AWAITING
        except KeyRejected:
            base.state = "to_submit"  # a 401 creates no task
            self.journal.put(base)
            raise
        except InputRejected as e:
            return self._task_failed(path, base, str(e), "RUNWATCHD.REJECTED")
        except RetryableError as e:  # create_task only lets these out when nothing was sent
            base.state = "failed"
            return self._failed(path, None, f"submit failed: {e}", keep=base)
        base.state, base.task_id, base.task_status = "running", answer["id"], "PENDING"
        base.error = None
        self.journal.put(base)
        write_task_sidecar(path, base, "PENDING")
        log.info("submitted %s task %s for %s", rule.endpoint, base.task_id, path)
        if self.follow:
            self.follow(path, base.task_id, Path(base.output_dir or path.parent))
        return SUBMITTED

    def _attention(self: Processor, path: Path, record: FileRecord, why: str) -> str:
        record.state = "attention"
        record.error = f"needs attention: {why}; run `runwatchd retry {path}` to submit again"
        # Sidecar first: until the journal says "attention" the row stays "submitting", which a
        # restart repairs again (temp file included); the other order could leave a stale sidecar.
        write_task_sidecar(path, record, NEEDS_ATTENTION, failure=record.error)
        self.journal.put(record)
        log.error("%s %s", path, record.error)
        return ATTENTION

    def _task_failed(self: Processor, path: Path, base: FileRecord, failure: str, code: str, *,
                     claimed: bool = True) -> str:
        base.state, base.task_status, base.failure, base.failure_code = (
            "task_failed", "FAILED", failure, code)
        base.error = failure
        if not claimed and self.journal.put_unless_claimed(base) is not None:
            return SKIPPED  # another process submitted this content meanwhile
        write_task_sidecar(path, base, "FAILED", failure=failure, code=code)
        if claimed:  # after the sidecar, as in _attention
            self.journal.put(base)
        log.error("generation for %s not submitted: %s", path, failure)
        return INVALID

    def ensure_task_sidecar(self: Processor, path: Path, record: FileRecord) -> None:
        """Make the sidecar say what the journal knows about the file's task (after a crash
        between the two writes, or when the user deleted the sidecar)."""
        status = sidecar_status(record)
        if status is None:
            return
        data = sidecar.read_sidecar(path)
        task = (data or {}).get("task") or {}
        try:
            st = os.stat(path)
        except OSError:
            return
        if (data is not None and sidecar.sidecar_matches(data, st, path.name)
                and task.get("id") == record.task_id and task.get("status") == status):
            return
        write_task_sidecar(path, record, status, failure=record.failure or (
            record.error if record.state == "attention" else None), code=record.failure_code)
