"""The lifecycle vocabulary: a file's states in the store, how processing it ends, why it failed.

A file's row goes through these states (the order of writes that makes a crash at any moment
repairable is drawn in lifecycle/processor.py):

    (no row) -> uploading -> uploaded                                  no rule: done
                          -> to_submit -> submitting -> running -> succeeded | task_failed
                                                     -> attention  (a POST may have made a task)
                                                     -> awaiting_credits (no task was made)
    any -> invalid            a permanent problem; skipped until the file changes
    any -> failed             transient failures exhausted for now; retried after next_attempt
    uploading -> no_sidecar   uploaded, but the sidecar could not be written
    task_failed | attention | ... -> retry    `runwatchd retry FILE`, on purpose

The string values are the ones stored, so old journals read unchanged. TRANSITIONS lists every
write the code may make (old state -> new state); `check_transition` is what the store asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FileState(StrEnum):
    """A file's state in the store (one row per media file)."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    TO_SUBMIT = "to_submit"
    SUBMITTING = "submitting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    TASK_FAILED = "task_failed"
    ATTENTION = "attention"
    RETRY = "retry"
    AWAITING_CREDITS = "awaiting_credits"
    INVALID = "invalid"
    FAILED = "failed"
    NO_SIDECAR = "no_sidecar"


S = FileState

# A row in one of these states holds (or may hold) a generation for its content: never again.
TASK_STATES = frozenset({S.SUBMITTING, S.RUNNING, S.SUCCEEDED, S.TASK_FAILED, S.ATTENTION})
# A row in one of these states means a write may have been under way when the process stopped.
IN_PROGRESS_STATES = frozenset({S.UPLOADING, S.SUBMITTING, S.RUNNING})
# Settled states that are no success: `scan` exits 1 while such a file sits in its scope.
FAILURE_STATES = frozenset({S.TASK_FAILED, S.ATTENTION, S.INVALID})
# States `runwatchd retry` may turn into RETRY ("running"/"submitting" have a task in flight,
# "uploaded" has no rule to run, "invalid" waits for the file to change).
RETRYABLE_STATES = frozenset({S.ATTENTION, S.TASK_FAILED, S.SUCCEEDED, S.AWAITING_CREDITS,
                              S.FAILED, S.TO_SUBMIT, S.RETRY, S.NO_SIDECAR})

# A new version of the file (other size, mtime or inode) starts its lifecycle over from any
# state: these are the first states of a version.
_FRESH = frozenset({S.UPLOADING, S.UPLOADED, S.INVALID, S.FAILED})
# A file found with a matching sidecar that describes a task (a new state directory, a restored
# backup) is adopted straight into the state its sidecar shows.
_ADOPTED = frozenset({S.RUNNING, S.SUCCEEDED, S.TASK_FAILED, S.ATTENTION})
# New content over a row holding a task: its "uploading" row is refused (put_unless_claimed, the
# sha is not known yet), so the first write of the new version that lands is "to_submit".
_NEW_CONTENT_OVER_TASK = frozenset({S.TO_SUBMIT})

TRANSITIONS: dict[FileState | None, frozenset[FileState]] = {
    None: _FRESH | _ADOPTED | {S.NO_SIDECAR, S.TO_SUBMIT, S.SUBMITTING, S.AWAITING_CREDITS},
    # submitting: killed after the sidecar, before "to_submit": the sidecar proves the upload.
    S.UPLOADING: _FRESH | {S.TO_SUBMIT, S.NO_SIDECAR, S.SUBMITTING},
    S.UPLOADED: _FRESH | _ADOPTED | {S.TO_SUBMIT, S.SUBMITTING, S.AWAITING_CREDITS, S.RETRY},
    S.TO_SUBMIT: _FRESH | _ADOPTED | {S.SUBMITTING, S.AWAITING_CREDITS, S.TASK_FAILED,
                                      S.RETRY, S.NO_SIDECAR},
    # retry: `runwatchd retry` on an intent a crash left, while no daemon owns the store.
    S.SUBMITTING: _FRESH | {S.RUNNING, S.ATTENTION, S.AWAITING_CREDITS, S.TO_SUBMIT,
                            S.TASK_FAILED, S.RETRY},
    S.RUNNING: _FRESH | _NEW_CONTENT_OVER_TASK | {S.SUCCEEDED, S.TASK_FAILED},
    S.SUCCEEDED: _FRESH | _NEW_CONTENT_OVER_TASK | {S.RETRY},
    S.TASK_FAILED: _FRESH | _NEW_CONTENT_OVER_TASK | {S.RETRY},
    S.ATTENTION: _FRESH | _NEW_CONTENT_OVER_TASK | {S.RETRY},
    S.RETRY: _FRESH | _ADOPTED | {S.TO_SUBMIT, S.SUBMITTING, S.AWAITING_CREDITS, S.NO_SIDECAR},
    S.AWAITING_CREDITS: _FRESH | _ADOPTED | {S.TO_SUBMIT, S.SUBMITTING, S.RETRY},
    S.INVALID: _FRESH | _ADOPTED | {S.RETRY, S.TO_SUBMIT, S.TASK_FAILED, S.AWAITING_CREDITS},
    S.FAILED: _FRESH | _ADOPTED | {S.TO_SUBMIT, S.SUBMITTING, S.AWAITING_CREDITS, S.NO_SIDECAR,
                                   S.RETRY, S.TASK_FAILED},
    S.NO_SIDECAR: _FRESH | _ADOPTED | {S.TO_SUBMIT, S.SUBMITTING, S.AWAITING_CREDITS, S.RETRY},
}


class TransitionError(ValueError):
    """A store write that the lifecycle does not allow (a bug, not bad input)."""


def check_transition(old: str | None, new: str, path: str = "") -> None:
    """Raise TransitionError unless a row may go from `old` (None: no row) to `new`.
    Writing the same state again (a task's status, a failure's attempt count) is always allowed."""
    if old == new:
        return
    try:
        before = None if old is None else FileState(old)
        after = FileState(new)
    except ValueError as e:
        raise TransitionError(f"{path}: unknown state in {old!r} -> {new!r}") from e
    if after not in TRANSITIONS[before]:
        raise TransitionError(f"{path}: {old or '(no row)'} -> {new} is not an allowed transition")


class Outcome(StrEnum):
    """How processing one settled file ended (what the daemon counts and `scan` reports)."""

    SKIPPED = "skipped"  # nothing to do: done before, or someone else has it
    UPLOADED = "uploaded"  # uploaded and its sidecar written; no rule
    SUBMITTED = "submitted"  # its generation was submitted; the follower takes it on
    INVALID = "invalid"  # a permanent problem, reported once
    FAILED = "failed"  # a transient failure; retried after a backoff
    RETRY = "retry"  # look again once it settles (it changed while uploading)
    ATTENTION = "attention"  # a generation POST may have made a task we do not know
    AWAITING_CREDITS = "awaiting_credits"  # generation waits for credits
    PAUSED = "paused"  # the API key was rejected: all work waits for a reload
    HELD = "held"  # another process (node, scan) works on it now: looked at again later
    # How a followed task ended (counted by the daemon when the follower reports it).
    SUCCEEDED = "succeeded"
    TASK_FAILED = "task_failed"


class FailureReason(StrEnum):
    """Why a file failed, as a stable token (metrics labels, logs): message wording may change,
    these may not."""

    INVALID_FILE = "invalid_file"  # too small/large, wrong type, unreadable, wrong media kind
    # The generation request was refused: by Runway (400), or before it was sent because this
    # file cannot fill it (its prompt file, promptText's length).
    REJECTED = "rejected"
    UPLOAD_FAILED = "upload_failed"  # the upload's retries gave up
    SUBMIT_FAILED = "submit_failed"  # the generation POST's retries gave up, no task made
    SIDECAR_WRITE = "sidecar_write"  # uploaded, but the sidecar could not be written
    SUBMIT_UNCERTAIN = "submit_uncertain"  # a POST may have made a task: needs attention
    KEY_REJECTED = "key_rejected"  # 401: every file waits
    RULES_BROKEN = "rules_broken"  # the file's rules file cannot be read
    INTERNAL_ERROR = "internal_error"  # a bug: reported with a traceback, costs one file


class TaskStatus(StrEnum):
    """A generation task's status as a sidecar shows it: Runway's own, and NEEDS_ATTENTION (ours:
    a POST may have made a task that we do not know)."""

    PENDING = "PENDING"
    THROTTLED = "THROTTLED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


# A task in one of these states is over: polling it again changes nothing.
FINAL_TASK_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})


@dataclass(frozen=True)
class Ending:
    """What processing one file came to: the outcome, and for failures the reason token."""

    outcome: Outcome
    reason: FailureReason | None = None
