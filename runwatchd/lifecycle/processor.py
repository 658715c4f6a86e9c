"""What happens to one settled file: observe -> decide -> apply, to a sidecar and a submitted task.

observe() reads the file's stat, journal row, sidecar and rule into Facts (facts.py); decide()
(decide.py) answers with one action without touching anything; apply() carries it out with the
Uploader (uploader.py) and the Submitter (generation/submitter.py). recover() is Recovery's
(recovery.py). The order of writes is what makes a crash at any moment repairable, with at most
one generation per file content (states: states.py):

    journal "uploading" -> upload -> sidecar -> journal "uploaded" (no rule) or "to_submit"
    journal "submitting" (the intent, claim_submit) -> POST -> journal "running" + task id
    -> sidecar task PENDING -> follower (generation/follower.py): status, downloads, final status

    a crash after ...          the restart finds ...   and (recover(), then process()) ...
    the upload, before sidecar "uploading"             removes our temps; uploads again
    the sidecar, before intent "uploading"/"to_submit" reuses the sidecar's URI; submits
    the intent (POST or not)   "submitting"            marks it "needs attention"; never resubmits
    the task id, before sidecar "running"              writes the sidecar's task; follows it
    during a download          "running"               removes our temps; polls; downloads again

A URI is never sent when it is older than 24 h less a margin (sidecar.uri_stale): the file is
uploaded again first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from runwatchd.errors import InvalidFile
from runwatchd.generation.outputs import OutputDirs, output_dir_for
from runwatchd.generation.rules import Rule, check_media
from runwatchd.generation.rules_files import RuleResolver
from runwatchd.generation.submitter import FollowFn, Submitter
from runwatchd.generation.task_sidecar import ensure_task_sidecar
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.decide import (
    Action,
    AdoptSidecar,
    EnsureTaskSidecar,
    Invalid,
    RecordFromSidecar,
    Skip,
    Submit,
    TakeNewVersion,
    Upload,
    WaitForRules,
    WriteSidecarFromJournal,
    decide,
    record_from_sidecar,
)
from runwatchd.lifecycle.facts import Facts, FileStat, Uploaded, might_be_same_content
from runwatchd.lifecycle.failures import Failures
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.recovery import Recovery
from runwatchd.lifecycle.states import Ending, FailureReason, FileState, Outcome
from runwatchd.lifecycle.uploader import ProgressFor, Uploader
from runwatchd.runway import media
from runwatchd.runway.client_ref import ClientRef
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

SKIPPED = Ending(Outcome.SKIPPED)


@dataclass
class Job:
    """A settled file and where it was found."""

    path: Path
    root: Path
    resolver: RuleResolver | None


class FileProcessor:
    """Turns a settled file into a sidecar (and a submitted task). Safe to call from many
    threads for different files; the daemon never processes one path twice at once.

    `client` is shared with the task follower (a reload swaps it for both); `pauses` holds
    generation back while credits are out; `follow` hands a submitted task to the follower;
    `backoff(attempts)` is the wait before a failed file is tried again (None: 30 s doubling
    to one hour)."""

    def __init__(
        self,
        client: ClientRef,
        store: Store,
        pauses: Pauses,
        *,
        follow: FollowFn | None = None,
        clock: Callable[[], float] = time.time,
        progress: ProgressFor | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._follow = follow
        self._failures = Failures(store, clock=clock, backoff=backoff)
        self._outputs = OutputDirs(store)
        self._uploader = Uploader(client, store, self._failures, progress=progress)
        self._submitter = Submitter(client, store, pauses, self._failures, self._outputs,
                                    follow=follow)
        self._recovery = Recovery(store, self._failures, follow=follow)

    def is_output(self, path: Path) -> bool:
        """True for a file inside a folder any generation was downloaded into, also one that
        a rule no longer names (after a rules file changed output_dir): never new media."""
        return self._outputs.contains(path)

    def recover(self, orphans: Iterable[FileRecord], output_dir_for: Callable[[Path], Path], *,
                in_scope: Callable[[Path], bool] | None = None,
                roots: Iterable[Path] = (), sweep_min_age: float = 0.0) -> None:
        """Repair what a crash left (Recovery.recover); before any worker or the follower runs,
        and only while holding the store's owner lock. `roots`: the watched folders."""
        self._recovery.recover(orphans, output_dir_for, in_scope=in_scope, roots=roots,
                               sweep_min_age=sweep_min_age)

    def take_over(self, orphans: Iterable[FileRecord],
                  output_dir_for: Callable[[Path], Path]) -> list[Path]:
        """Repair rows a holder that died mid-run left (Recovery.take_over): the files to look
        at again."""
        return self._recovery.take_over(orphans, output_dir_for)

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
        return record_from_sidecar(path, FileStat.of(st), data, FileState.UPLOADED)

    def process(self, job: Job) -> Ending:
        """Take one settled file as far as it goes now; how it ended. KeyRejected propagates
        (all work waits for a reload)."""
        facts = self.observe(job)
        return self.apply(job, facts, decide(facts))

    def observe(self, job: Job) -> Facts:
        """Everything decide() needs about the file, read without changing anything."""
        path, now = job.path, self._clock()
        if self._outputs.contains(path):
            return Facts(path, now, is_output=True)
        try:
            st = FileStat.of(media.check_file(path))
        except InvalidFile as e:
            return Facts(path, now, invalid=str(e))
        too_long = sidecar.name_problem(path)  # never upload a file that cannot have a sidecar
        if too_long is not None:
            return Facts(path, now, invalid=too_long)
        record = self._store.get(path)
        # Reading the whole file is worth it only when its row may hold this very content.
        digest = _digest(path) if might_be_same_content(record, st) else None
        broken = job.resolver.broken_rules_file(path) if job.resolver else None
        rule = job.resolver.rule_for(path) if job.resolver and broken is None else None
        media_problem = None
        if rule is not None:
            try:  # a .wav in an image_to_video folder: said once, nothing uploaded
                check_media(rule, path, job.root)
            except InvalidFile as e:
                media_problem = str(e)
        data, problem = sidecar.inspect_sidecar(path)
        return Facts(path, now, stat=st, record=record, digest=digest, broken_rules=broken,
                     rule=rule, media_problem=media_problem,
                     output_dir=output_dir_for(rule, path, job.root) if rule else None,
                     sidecar=data, sidecar_problem=problem)

    def apply(self, job: Job, facts: Facts, action: Action) -> Ending:
        """Carry out decide()'s action, in the order of writes the module docstring draws."""
        path = job.path
        match action:
            case Skip():
                return SKIPPED
            case Invalid(message=message):
                return self._failures.invalid(path, facts.stat, message)
            case WaitForRules(message=message):
                return self._failures.failed(path, facts.stat, message,
                                             FailureReason.RULES_BROKEN)
            case EnsureTaskSidecar(record=record):
                ensure_task_sidecar(path, record)
                return SKIPPED
            case TakeNewVersion(record=record):
                self._store.put(record)
                ensure_task_sidecar(path, record)
                log.info("%s changed on disk but not in content; its generation stands", path)
                return SKIPPED
            case AdoptSidecar(record=record):
                self._store.put(record)
                if record.state == FileState.RUNNING and self._follow and record.task_id:
                    self._follow(path, record.task_id, Path(record.output_dir or path.parent))
                return SKIPPED
            case RecordFromSidecar(record=record):
                self._store.put(record)
                return SKIPPED
            case WriteSidecarFromJournal(sidecar=data, record=record, then=then):
                unwritten = self._uploader.write_sidecar(path, dict(data), record)
                return unwritten if unwritten is not None else self.apply(job, facts, then)
            case Upload(attempts=attempts, submit=submit):
                return self._upload(job, facts, attempts, submit)
            case Submit(uploaded=uploaded):
                return self._submit(job, facts, uploaded)
            case _:
                assert_never(action)

    def _upload(self, job: Job, facts: Facts, attempts: int, submit: bool) -> Ending:
        if facts.sidecar_problem is not None:
            log.warning("%s", facts.sidecar_problem)
        assert facts.stat is not None  # decide() uploads only files check_file accepted
        result = self._uploader.upload(
            job.path, facts.stat, attempts=attempts,
            final_state=FileState.TO_SUBMIT if submit else FileState.UPLOADED)
        if isinstance(result, Ending):
            return result
        return self._submit(job, facts, result) if submit else Ending(Outcome.UPLOADED)

    def _submit(self, job: Job, facts: Facts, uploaded: Uploaded) -> Ending:
        assert facts.rule is not None and facts.output_dir is not None  # decide() checked
        return self._submitter.submit(job.path, job.root, facts.rule, facts.output_dir, uploaded)


def _digest(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None
