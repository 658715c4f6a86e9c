"""Settled files on their way to a worker: the ready queue, the files in flight, the pool.

    settle table --enqueue--> ready queue --dispatch (admit)--> pool: work(job) --finish-->
                                                                 | an event meanwhile: dirty
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runwatchd.lifecycle.processor import Job
from runwatchd.watch.folders import Folder
from runwatchd.watch.settle import Signature

log = logging.getLogger(__name__)

# Files worked on per upload in flight: while `concurrency` files move their bytes (the client's
# transfer limit), as many again wait on an API round trip (slot request, journal, sidecar) rather
# than on a free worker. For small files that round trip is most of the time (benchmarks/, case 2).
WORKERS_PER_TRANSFER = 2


@dataclass(frozen=True)
class Settled:
    """A settled file waiting for a worker; `sig` is its signature when it settled (None: it
    goes to a worker without that check, e.g. back from a pause)."""

    path: Path
    folder: Folder
    sig: Signature | None = None


class Scheduler:
    """The ready queue, the files in flight and the worker pool.

    One lock, `_lock`, guards all of its state: `_ready` (settled files waiting for a worker, in
    order) and `_queued` (their paths), `_in_flight` (path -> its worker's Future, None while it
    is handed to the pool), `_dirty` (paths in flight that an event or scan touched meanwhile),
    `_busy` (jobs handed to the pool whose work has not returned) and `_last_progress`.
    Who takes it: the main loop (enqueue, dispatch, counts, idle), observer threads and scans
    (hold, through the daemon's candidate routing), workers (finish, and the end of each job),
    health (in_flight, last_progress). It is held only while those fields change: never while
    calling out (admit, work, the pool, the wake callback), and no other lock is taken under it.

    `admit(item)` (main loop) turns a settled file into a Job, or None to drop it; `work(job,
    item)` runs on a pool thread and must call `finish()` once the file's outcome is known.
    """

    def __init__(
        self,
        *,
        transfers: int,
        admit: Callable[[Settled], Job | None],
        work: Callable[[Job, Settled], None],
        paused: Callable[[], bool] = lambda: False,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admit = admit
        self._work = work
        self._paused = paused
        self._wake = wake
        self._clock = clock
        self._limit = WORKERS_PER_TRANSFER * transfers
        self._pool = ThreadPoolExecutor(self._limit, thread_name_prefix="runwatchd-up")
        self._lock = threading.Lock()
        self._ready: deque[Settled] = deque()
        self._queued: set[Path] = set()
        self._in_flight: dict[Path, Future[None] | None] = {}
        self._dirty: set[Path] = set()
        self._busy = 0
        self._last_progress = clock()

    # -- feeding ---------------------------------------------------------------------------------

    def enqueue(self, item: Settled) -> None:
        """A file settled: it waits for a worker, in order."""
        with self._lock:
            self._ready.append(item)
            self._queued.add(item.path)

    def hold(self, path: Path) -> bool:
        """An event or scan touched `path`: True when the scheduler has it already (queued: its
        signature is checked again when a worker takes it; in flight: marked dirty, and looked
        at again once its worker is done), False when it is the settle table's to take."""
        with self._lock:
            if path in self._queued:
                return True
            if path in self._in_flight:
                self._dirty.add(path)
                return True
        return False

    def set_transfers(self, transfers: int) -> None:
        """A reload changed [runway] concurrency: the bound on files in flight follows (the
        pool keeps its threads; extra jobs wait in it)."""
        with self._lock:
            self._limit = WORKERS_PER_TRANSFER * transfers

    # -- work ------------------------------------------------------------------------------------

    def dispatch(self) -> int:
        """Hand ready files to workers while fewer than the limit are in flight and nothing is
        paused; returns how many were handed over."""
        started = 0
        while not self._paused():
            with self._lock:
                if not self._ready or len(self._in_flight) >= self._limit:
                    break
                item = self._ready.popleft()
                self._queued.discard(item.path)
                if item.path in self._in_flight:
                    continue  # already being worked on
            job = self._admit(item)
            if job is None:
                continue
            with self._lock:
                # Before submit: a fast worker pops its entry, and must find one to pop.
                self._in_flight[item.path] = None
                self._busy += 1
            fut = self._pool.submit(self._run, job, item)
            started += 1
            with self._lock:
                if item.path in self._in_flight:
                    self._in_flight[item.path] = fut
        return started

    def _run(self, job: Job, item: Settled) -> None:
        try:
            self._work(job, item)
        except Exception:  # a bug must cost one file, not leave it in flight for ever
            log.exception("unexpected error after processing %s", item.path)
            self.finish(item.path)
        finally:
            with self._lock:
                self._busy -= 1
            self._wake()

    def finish(self, path: Path, *, requeue: Settled | None = None) -> bool:
        """A worker is done with `path` (`requeue`: it goes back to the front of the queue, e.g.
        paused); True when an event or scan touched it meanwhile (dirty)."""
        with self._lock:
            self._in_flight.pop(path, None)
            dirty = path in self._dirty
            self._dirty.discard(path)
            self._last_progress = self._clock()
            if requeue is not None:
                self._ready.appendleft(requeue)
                self._queued.add(requeue.path)
        return dirty

    def note_progress(self) -> None:
        """Work moved on elsewhere (a followed task finished): the workers are not stuck."""
        with self._lock:
            self._last_progress = self._clock()

    # -- views -----------------------------------------------------------------------------------

    def in_flight(self) -> frozenset[Path]:
        """The paths being worked on now (a snapshot)."""
        with self._lock:
            return frozenset(self._in_flight)

    def queued_count(self) -> int:
        """Settled files waiting for a worker."""
        with self._lock:
            return len(self._ready)

    def idle(self) -> bool:
        """Nothing queued and no job running (bookkeeping after a file's outcome included)."""
        with self._lock:
            return not self._ready and not self._busy

    def last_progress(self) -> float:
        """When (clock time) a worker last finished a file, or other work last moved on."""
        with self._lock:
            return self._last_progress

    # -- the end ---------------------------------------------------------------------------------

    def drain(self, grace: float) -> int:
        """Stop taking files; wait up to `grace` seconds for the uploads in flight. Returns how
        many did not finish (their workers run on; the process exit leaves them)."""
        with self._lock:
            pending = [fut for fut in self._in_flight.values() if fut is not None]
        if pending:
            log.info("waiting up to %.0f s for %d upload(s) in flight", grace, len(pending))
        deadline = time.monotonic() + grace
        for fut in pending:
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a timeout or failure is reported below
                pass
        unfinished = sum(1 for fut in pending if not fut.done())
        if unfinished:
            log.warning("%d upload(s) did not finish within %.0f s; they start over at the next "
                        "start", unfinished, grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return unfinished

    def join(self) -> None:
        """Wait for every worker thread to end (after drain(); tests, so no thread outlives
        them)."""
        self._pool.shutdown(wait=True)
