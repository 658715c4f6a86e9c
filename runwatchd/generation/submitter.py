"""Submitting a file's generation: at most once per file content.

The journal row is claimed ("submitting", the intent) before each POST, so a crash while one is
on the wire is found at the next start and marked "needs attention" instead of being sent again
(lifecycle/processor.py draws the whole order of writes). The retries live here, not in the
client, so the journal sees each attempt: an answer that proves no task was created (429, 502,
503, not connected) puts the row back to "to_submit" before the backoff sleep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from runwatchd.errors import (
    InputRejected,
    InvalidFile,
    KeyRejected,
    NoCredits,
    RetryableError,
    StoreUnavailable,
    SubmitUncertain,
)
from runwatchd.generation.outputs import OutputDirs
from runwatchd.generation.rules import Rule, build_request, rule_fingerprint
from runwatchd.generation.task_sidecar import credits_of, ensure_task_sidecar, write_task_sidecar
from runwatchd.lifecycle.facts import Uploaded
from runwatchd.lifecycle.failures import Failures
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.states import Ending, FailureReason, FileState, Outcome, TaskStatus
from runwatchd.runway.client_ref import ClientRef
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

S = FileState

# Follow a submitted task: (media file, task id, folder its outputs go to).
FollowFn = Callable[[Path, str, Path], None]
# How long a created task's id waits in memory for an unreachable store before it is given up
# (the row stays "submitting": "needs attention" then, as after a crash).
RECORD_PATIENCE = 900.0


class Submitter:
    """Submits generations with the client in use; waits while credits are out (`pauses`)."""

    def __init__(self, client: ClientRef, store: Store, pauses: Pauses, failures: Failures,
                 outputs: OutputDirs, *, follow: FollowFn | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._sleep = sleep
        self._store = store
        self._pauses = pauses
        self._failures = failures
        self._outputs = outputs
        self._follow = follow

    def submit(self, path: Path, root: Path, rule: Rule, output_dir: Path,
               uploaded: Uploaded) -> Ending:
        """Submit the rule's generation for this file content, at most once (claim_submit);
        its outputs go to `output_dir`. `uploaded.uri` must be fresh: the processor uploads
        again when a URI is near expiry."""
        base = FileRecord(
            path=str(path), state=S.TO_SUBMIT, size=uploaded.size, mtime_ns=uploaded.mtime_ns,
            ctime_ns=uploaded.ctime_ns, inode=uploaded.inode, sha256=uploaded.sha256,
            runway_uri=uploaded.uri, uploaded_at=uploaded.uploaded_at,
            rule_fp=rule_fingerprint(rule), endpoint=rule.endpoint, rule_name=rule.name,
            output_dir=str(output_dir),
        )
        if self._pauses.credits_out:
            base.state, base.error = S.AWAITING_CREDITS, "waiting for credits to submit"
            if self._store.put_unless_claimed(base) is None:
                return Ending(Outcome.AWAITING_CREDITS)
            return Ending(Outcome.SKIPPED)
        try:
            body = build_request(rule, path, uploaded.uri, root)
        except InvalidFile as e:
            return self._failures.task_failed(
                path, base, f"{e}; fix it, then run `runwatchd retry {path}`", "RUNWATCHD.INPUT",
                claimed=False)
        self._outputs.add(output_dir)
        client, attempt, started = self._client.current, 0, time.monotonic()
        while True:
            attempt += 1
            sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            # The intent, committed before each POST: its send time is what a restart's "needs
            # attention" gives the user to find a task on the Runway dashboard.
            base.error = f"the generation POST sent at {sent_at}"
            holder = self._store.claim_submit(base)
            if holder is not None:
                log.info("%s already has a generation (%s, task %s); not submitting again",
                         path, holder.state, holder.task_id)
                ensure_task_sidecar(path, holder)
                return Ending(Outcome.SKIPPED)
            try:
                answer = client.create_task(rule.endpoint, body)
                break
            except SubmitUncertain as e:
                return self._failures.attention(path, base, (
                    f"the POST sent at {sent_at} may have created a task ({e}); check the Runway "
                    f"dashboard's tasks for {path.name}"))
            except NoCredits as e:
                self._pauses.run_out_of_credits()
                base.state, base.error = S.AWAITING_CREDITS, f"waiting for credits: {e}"
                self._store.put(base)
                log.error("generation paused: %s (uploads go on; reload after buying credits)", e)
                return Ending(Outcome.AWAITING_CREDITS)
            except KeyRejected:
                base.state, base.error = S.TO_SUBMIT, None  # a 401 creates no task
                self._store.put(base)
                raise
            except InputRejected as e:
                return self._failures.task_failed(path, base, str(e), "RUNWATCHD.REJECTED")
            except RetryableError as e:  # not sent, 429, 502, 503: no task was created
                delay = client.submit_retry_delay(attempt, started, e)
                if delay is None:
                    return self._failures.failed(path, None, f"submit failed: {e}",
                                                 FailureReason.SUBMIT_FAILED, keep=base)
                # Claimed, not sent: the row leaves "submitting" for the whole backoff, so a
                # crash while it sleeps resubmits after a restart instead of asking for attention.
                base.state, base.error = S.TO_SUBMIT, f"submit retried after: {e}"
                self._store.put(base)
                client.wait_to_resubmit(rule.endpoint, attempt, delay, e)
        task_id = str(answer["id"])
        base.state, base.task_id, base.task_status = S.RUNNING, task_id, TaskStatus.PENDING
        base.error = None
        self._record_task(base)
        write_task_sidecar(path, base, TaskStatus.PENDING, credits=credits_of(answer))
        log.info("submitted %s task %s for %s", rule.endpoint, task_id, path)
        if self._follow:
            self._follow(path, task_id, output_dir)
        return Ending(Outcome.SUBMITTED)

    def _record_task(self, record: FileRecord) -> None:
        """Record a task Runway created: its id exists nowhere else yet, so a store outage is
        waited out (once a second, RECORD_PATIENCE at most) rather than losing it."""
        waited = 0.0
        while True:
            try:
                self._store.put(record)
                if waited:
                    log.info("task %s of %s recorded after the store came back", record.task_id,
                             record.path)
                return
            except StoreUnavailable as e:
                if waited >= RECORD_PATIENCE:
                    raise
                if not waited:
                    log.info("task %s of %s was created but %s; holding its id until the "
                             "store is back", record.task_id, record.path, e)
                self._sleep(1.0)
                waited += 1.0
