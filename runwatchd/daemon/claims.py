"""This process's claims on work in a store that other processes share: the nodes of a cluster
on one PostgreSQL store, or `runwatchd scan` beside a daemon on one SQLite journal.

A worker leases a file before it looks at it (claim) and gives the lease up when it is done,
unless this process's follower now follows the file's task: the lease stays while it does. Every
third of the lease time the main loop's tick() beats the heart (extending every lease held, so
a live node never loses one) and takes over the orphans: rows in progress whose holder died
(its leases expired, or the store proved it dead). Leases keep the cluster at one upload per file;
the at-most-once generation claim is still the store's claim_submit, and a dead node's intent
(submitting) becomes "needs attention" exactly as after a crash (lifecycle/recovery.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runwatchd import __version__
from runwatchd.errors import StoreUnavailable
from runwatchd.lifecycle.states import IN_PROGRESS_STATES, FileState
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

# Rows another holder left in progress: each is repaired the way a restart repairs its own.
ORPHAN_STATES = frozenset({*IN_PROGRESS_STATES, FileState.NO_SIDECAR})


class WorkClaims:
    """Leases on the files this process works on, its heartbeat, and taking over orphans.

    `busy()`: the files this process works on now (in flight and followed): a lease on any other
    is given up at the next beat. `take_over(rows)`: repair rows taken over from a dead holder
    (their leases are ours then). Its lock guards `_held`."""

    def __init__(self, store: Store, *, seconds: float, busy: Callable[[], set[Path]],
                 take_over: Callable[[list[FileRecord]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.seconds = seconds
        self._busy = busy
        self._take_over = take_over
        self._clock = clock
        self._lock = threading.Lock()
        self._held: set[Path] = set()
        self._next_beat = 0.0

    def claim(self, path: Path) -> str | None:
        """Lease `path` for this process: None when ours, else the node that works on it."""
        holder = self._store.lease(path, self.seconds)
        if holder is None:
            with self._lock:
                self._held.add(path)
        return holder

    def done(self, path: Path, *, keep: bool) -> None:
        """A worker is done with `path`: give its lease up unless `keep` (its task is followed
        here)."""
        if keep:
            return
        with self._lock:
            self._held.discard(path)
        self._store.release(path)

    def tick(self, in_flight: int, *, take_orphans: bool = True) -> None:
        """The main loop's turn: every third of the lease time, beat and take orphans over
        (not while `take_orphans` is False: just back from a store outage, the other nodes
        have not renewed their leases yet)."""
        now = self._clock()
        if now < self._next_beat:
            return
        self._next_beat = now + self.seconds / 3
        try:
            self.beat(in_flight)
            self._release_idle()
            orphans = (self.take_orphans() if self._take_over is not None and take_orphans
                       else [])
        except StoreUnavailable as e:
            log.debug("heartbeat skipped: %s", e)  # the outage is told elsewhere, once
            return
        if orphans and self._take_over is not None:
            log.info("taking over %d file(s) whose holder stopped: %s", len(orphans),
                     ", ".join(r.path for r in orphans[:5]) + (" ..." if len(orphans) > 5 else ""))
            self._take_over(orphans)

    def beat(self, in_flight: int = 0) -> None:
        self._store.heartbeat(self.seconds, in_flight=in_flight, version=__version__)

    def take_orphans(self) -> list[FileRecord]:
        """Rows in progress that no live holder leases, leased to us now."""
        rows = self._store.take_orphans(ORPHAN_STATES, self.seconds)
        with self._lock:
            self._held.update(Path(r.path) for r in rows)
        return rows

    def _release_idle(self) -> None:
        with self._lock:
            held = set(self._held)  # before busy(): a claim made after it is in flight already
        idle = held - self._busy()
        with self._lock:
            self._held -= idle
        for path in idle:
            self._store.release(path)

    def leave(self) -> None:
        """A clean stop: every lease goes at once, so the others need not wait for expiry."""
        with self._lock:
            self._held.clear()
        try:
            self._store.leave()
        except StoreUnavailable as e:
            log.warning("could not give up this node's leases (%s); they expire in %.0f s",
                        e, self.seconds)
