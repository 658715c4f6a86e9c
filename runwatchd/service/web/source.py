"""What the status page asks of a running daemon besides its store: `WebSource`.

The store holds every file's state (the whole cluster's, when several hosts share one); live facts
that never reach the store come from here: the health of observers and of the API, files still
waiting to settle, bytes sent by uploads in flight, and the one action the page may take (retry).

`mark_for_retry` is `runwatchd retry FILE`'s store write, shared so that a retry from the page
means exactly what one from the command line means.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from runwatchd.lifecycle.states import RETRYABLE_STATES, FileState
from runwatchd.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObserverHealth:
    """One watched folder's observer, as `runwatchd status` shows it."""

    folder: str
    kind: str  # inotify | polling | none
    state: str  # watching | idle | unavailable
    alive: bool


@dataclass(frozen=True)
class HealthReport:
    """The daemon's health at a glance."""

    healthy: bool  # what systemd's watchdog is told: observers alive, workers progressing
    observers: tuple[ObserverHealth, ...]
    api_reachable: bool | None  # None: not asked yet
    credits: int | None  # the organization's credit balance when known
    paused: str | None  # why all work is paused (the API key was rejected), else None
    credits_out: bool = False  # generations wait for credits (uploads go on)


@dataclass(frozen=True)
class Progress:
    """Bytes an upload in flight has sent, of its file's size."""

    sent: int
    total: int


class RetryOutcome(StrEnum):
    """What a retry request came to."""

    RETRYING = "retrying"  # marked for retry; the daemon looks at the file again at once
    UNKNOWN = "unknown"  # the store has no such file
    NOT_RETRYABLE = "not_retryable"  # its generation is in flight, or nothing to retry
    CHANGED = "changed"  # the row moved while we looked: ask again


class WebSource(Protocol):
    """Live facts and the retry action, implemented by the daemon (daemon_source.py today)."""

    @property
    def node(self) -> str:
        """This host's name in the cluster (a file's node when the store does not record one)."""
        ...

    def health(self) -> HealthReport: ...

    def watched_folders(self) -> Sequence[Path]:
        """The roots of the watched folders, as this host mounts them."""
        ...

    def waiting(self) -> Sequence[str]:
        """Paths waiting to settle on this host (they have no store row yet, or an old one)."""
        ...

    def uploads(self) -> Mapping[str, Progress]:
        """Uploads in flight on this host: path -> bytes sent of total."""
        ...

    def request_retry(self, path: str) -> RetryOutcome:
        """`runwatchd retry FILE` for one file: mark it (mark_for_retry) and wake the daemon."""
        ...

    def media_path(self, path: str) -> Path | None:
        """Where this host reads the media file of a store row (None: not reachable here)."""
        ...

    def output_path(self, path: str, output: str) -> Path | None:
        """Where this host reads one of a row's outputs, as the row lists it (relative to the
        media file's folder, or absolute); None when it cannot be reached from here."""
        ...


def mark_for_retry(store: Store, path: str) -> tuple[RetryOutcome, str | None]:
    """Turn a retryable row into "retry", as `runwatchd retry FILE` does; (outcome, the state it
    was in). Only if the row did not move meanwhile, so a daemon submitting it at the same moment
    and this write cannot both win: the store's claim lets exactly one submission through."""
    record = store.get(path)
    if record is None:
        return RetryOutcome.UNKNOWN, None
    if record.state not in RETRYABLE_STATES:
        return RetryOutcome.NOT_RETRYABLE, record.state
    changed = store.update_if(path, record.state, state=FileState.RETRY, task_id=None,
                              task_status=None, failure=None, failure_code=None, error=None,
                              outputs=[], attempts=0, next_attempt=None)
    if not changed:
        return RetryOutcome.CHANGED, record.state
    return RetryOutcome.RETRYING, record.state


def local_output_path(media: str, output: str) -> Path:
    """An output as a row lists it (relative to the media file's folder, or absolute)."""
    return Path(os.path.normpath(Path(media).parent / output))
