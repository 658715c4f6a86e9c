"""Settle: a file leaves the candidate table only once it has stopped changing.

Events are hints, never proof. Every source (inotify or polling events, the catch-up scan,
periodic reconcile scans, rescans after a queue overflow) calls `CandidateTable.touch`; the main
loop calls `pop_ready` and gets the files whose signature (size, mtime_ns, ctime_ns, inode) stayed
the same for the folder's settle time. ctime changes on every write, so two stats `settle` seconds
apart that agree prove that nothing wrote to the file in between, whatever events were missed.

close_write may shorten the wait, never replace it: a killed writer also closes its file, and an
SMB client sets the final size first and fills the file later.

The table is pure logic: the clock and stat are injected, so tests drive it exactly.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# An early re-check (after an event on a known file) never comes sooner than this after the
# previous stat of that file: a writer sending thousands of modify events costs a few stats a
# second, not one per event.
RECHECK_INTERVAL = 0.25

_CHECKING = -1  # seq of an entry whose stat is in progress (no live heap item)


@dataclass(frozen=True)
class Signature:
    """What must stay unchanged for a file to count as finished."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


def signature_of(st: os.stat_result) -> Signature:
    return Signature(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def still_matches(path: Path, sig: Signature) -> bool:
    """Whether `path` still has signature `sig` (False when it is gone or unreadable)."""
    try:
        return signature_of(os.stat(path)) == sig
    except OSError:
        return False


class _Entry:
    __slots__ = ("path", "sig", "stable_since", "settle", "due", "seq", "last_check", "recheck")

    def __init__(self, path: Path, sig: Signature, now: float, settle: float) -> None:
        self.path = path
        self.sig = sig
        self.stable_since = now  # when the current signature was first seen
        self.settle = settle
        self.due = now + settle  # when the next stat is wanted
        self.seq = 0  # id of the live heap item, or _CHECKING
        self.last_check = now
        self.recheck = False  # an event arrived while a stat was in progress


class CandidateTable:
    """Files waiting to settle. Thread-safe: events arrive on observer threads, the main loop pops.

    A heap orders the checks; rescheduling pushes a new item and leaves the old one behind as
    stale (recognised by its sequence number and skipped), so every operation is O(log n).
    Stats run outside the lock, so a slow NAS never blocks the observer threads.
    Keys are path strings: a str caches its hash, a PurePath (3.11) recomputes it on every lookup.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[Path], os.stat_result] = os.stat,
    ) -> None:
        self._clock = clock
        self._stat = stat
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0

    # -- feeding ---------------------------------------------------------------------------------

    def touch(self, path: Path | str, settle_seconds: float, *, closed: bool = False) -> None:
        """Something happened to `path` (event or scan): make sure it is watched until it settles.

        A known path keeps its clock: a check is scheduled soon (throttled by RECHECK_INTERVAL),
        and that stat decides. `closed` (close_write) is only a hint that the file may be done;
        it never makes a file ready before `settle_seconds` of an unchanged signature.
        """
        key = os.fspath(path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.settle = settle_seconds
                if entry.seq == _CHECKING:
                    entry.recheck = True
                    return
                # A close is at most one event per write session, so it skips the throttle:
                # stat now, and the file is ready settle seconds after its last write, not up
                # to RECHECK_INTERVAL later. The stat still decides; nothing is made ready.
                now = self._clock()
                early = now if closed else max(now, entry.last_check + RECHECK_INTERVAL)
                if early < entry.due:
                    self._schedule(key, entry, early)
                return
        if not isinstance(path, Path):
            path = Path(path)
        # New path: stat outside the lock (a NAS stat can take a while).
        try:
            sig = signature_of(self._stat(path))
        except (FileNotFoundError, NotADirectoryError):
            log.debug("%s vanished before it could be watched", path)
            return
        except OSError as e:
            log.warning("cannot stat %s: %s; it will be picked up by the next scan", path, e)
            return
        now = self._clock()
        with self._lock:
            if key in self._entries:  # another thread added it meanwhile; its clock stands
                return
            entry = _Entry(path, sig, now, settle_seconds)
            self._entries[key] = entry
            self._schedule(key, entry, entry.due)
        log.debug("candidate %s (settle %.1f s, closed=%s)", path, settle_seconds, closed)

    def discard(self, path: Path | str) -> None:
        with self._lock:
            self._entries.pop(os.fspath(path), None)  # its heap items become stale

    # -- draining --------------------------------------------------------------------------------

    def pop_ready(self) -> list[tuple[Path, Signature]]:
        """Stat every candidate whose check is due; return (and forget) those that settled."""
        with self._lock:
            now = self._clock()
            batch: list[tuple[str, _Entry]] = []
            while self._heap and self._heap[0][0] <= now:
                _due, seq, key = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                if entry is None or entry.seq != seq:
                    continue
                entry.seq = _CHECKING
                batch.append((key, entry))
        if not batch:
            return []

        results: list[tuple[str, _Entry, float, float, Signature | None]] = []
        for key, entry in batch:
            before = self._clock()
            try:
                sig: Signature | None = signature_of(self._stat(entry.path))
            except (FileNotFoundError, NotADirectoryError):
                sig = None
            except OSError as e:
                log.warning("cannot stat %s: %s; dropping it until the next scan", entry.path, e)
                sig = None
            results.append((key, entry, before, self._clock(), sig))

        ready: list[tuple[Path, Signature]] = []
        with self._lock:
            for key, entry, before, after, sig in results:
                if self._entries.get(key) is not entry:
                    continue  # discarded while we were looking
                if sig is None:
                    del self._entries[key]
                    log.debug("%s vanished while settling", entry.path)
                    continue
                recheck, entry.recheck = entry.recheck, False
                entry.last_check = after
                if sig != entry.sig:
                    entry.sig = sig
                    entry.stable_since = after
                    due = after + entry.settle
                elif before - entry.stable_since >= entry.settle and not recheck:
                    del self._entries[key]
                    ready.append((entry.path, sig))
                    continue
                else:
                    due = entry.stable_since + entry.settle
                if recheck:
                    due = min(due, after + RECHECK_INTERVAL)
                self._schedule(key, entry, due)
            self._compact()
        return ready

    def next_due(self) -> float | None:
        """Seconds until the earliest scheduled check (0 if overdue); None when nothing waits."""
        with self._lock:
            heap = self._heap
            while heap:
                _due, seq, key = heap[0]
                entry = self._entries.get(key)
                if entry is not None and entry.seq == seq:
                    return max(0.0, heap[0][0] - self._clock())
                heapq.heappop(heap)
            return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def paths(self) -> list[str]:
        """The files waiting to settle (a snapshot)."""
        with self._lock:
            return list(self._entries)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        with self._lock:
            return os.fspath(path) in self._entries

    # -- internals (lock held) -------------------------------------------------------------------

    def _schedule(self, key: str, entry: _Entry, due: float) -> None:
        self._seq += 1
        entry.seq = self._seq
        entry.due = due
        heapq.heappush(self._heap, (due, self._seq, key))

    def _compact(self) -> None:
        # Stale items are dropped lazily as they surface; rebuild only if they pile up.
        if len(self._heap) > 2 * len(self._entries) + 1024:
            self._heap = [
                (e.due, e.seq, k) for k, e in self._entries.items() if e.seq != _CHECKING
            ]
            heapq.heapify(self._heap)
