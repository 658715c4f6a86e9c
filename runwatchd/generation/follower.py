"""Follow submitted generations to their end and bring the outputs home.

A few worker threads share one heap of (next poll time, task), so hundreds of tasks are followed
without a thread each and one slow download does not hold up every other poll. Runway asks for
polls no faster than every 5 s, with jitter: each task is polled 1.0-1.2 poll intervals after its
last poll. PENDING, THROTTLED and RUNNING are waiting, not errors. SUCCEEDED: every output URL is
downloaded atomically (a temp name, then a rename) into the folder the journal recorded at submit
time, as <name><ext>, <name>_2<ext>, ... (shot.jpg -> shot.jpg.mp4; outputs.py); then the
journal and the sidecar get the final status. FAILED and CANCELLED keep `failure` and
`failureCode` (scrubbed of the secret, capped) and are never resubmitted automatically. A download
that can never work ends the task FAILED (RUNWATCHD.DOWNLOAD) at once, one that keeps failing
after MAX_DOWNLOAD_ATTEMPTS polls; a full disk only waits.

Poll interval: `poll_interval=` in code (tests, the demo). Left out (None), it is Runway's 5 s,
unless the environment sets RUNWATCHD_TASK_POLL_SECONDS, a knob for running the CLI against the
local emulator quickly (the tests, benchmarks). It is honoured below 5 s only when the API base
URL is a loopback address (the emulator); against anything else it is raised to 5 s, so it can
never make runwatchd poll Runway faster than Runway allows.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from runwatchd.errors import (
    DiskFull,
    DownloadRefused,
    InputRejected,
    KeyRejected,
    RunwayError,
    StoreUnavailable,
)
from runwatchd.generation.outputs import free_output, output_ext
from runwatchd.generation.task_sidecar import Credits, credits_of, write_task_sidecar
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.states import FINAL_TASK_STATUSES, FileState, TaskStatus
from runwatchd.runway.client_ref import ClientRef
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

MIN_POLL = 5.0
POLL_ENV = "RUNWATCHD_TASK_POLL_SECONDS"
WORKERS = 4
MAX_BACKOFF = 300.0
# Seconds before a task whose store write failed (the store is unreachable) is polled again.
STORE_RETRY = 2.0
# Polls whose download failed (each already retried by the client) before the task ends FAILED:
# with the backoff, about half an hour; `runwatchd scan` must end, not retry for ever.
MAX_DOWNLOAD_ATTEMPTS = 8
DOWNLOAD_CODE = "RUNWATCHD.DOWNLOAD"
# A task's `failure` is shown in status lines and sidecars: a server may send megabytes.
MAX_FAILURE_CHARS = 2000


def resolve_poll_interval(explicit: float | None, base_url: str | None,
                          env: Mapping[str, str] = os.environ) -> float:
    """The poll interval: `explicit` if given, else $RUNWATCHD_TASK_POLL_SECONDS (at least
    MIN_POLL unless `base_url` is a loopback address), else MIN_POLL."""
    if explicit is not None:
        return max(0.0, explicit)
    raw = env.get(POLL_ENV)
    if not raw:
        return MIN_POLL
    try:
        wanted = float(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a number", POLL_ENV, raw)
        return MIN_POLL
    if not wanted >= 0:  # also NaN
        return MIN_POLL
    if wanted < MIN_POLL and not _is_loopback(base_url):
        log.warning("%s=%s is below Runway's %g s minimum; polling every %g s", POLL_ENV, raw,
                    MIN_POLL, MIN_POLL)
        return MIN_POLL
    return wanted


def _is_loopback(url: str | None) -> bool:
    host = urlparse(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(order=True)
class _Followed:
    due: float
    path: Path = field(compare=False)
    task_id: str = field(compare=False)
    output_dir: Path = field(compare=False)
    errors: int = field(default=0, compare=False)
    download_attempts: int = field(default=0, compare=False)
    disk_full_said: bool = field(default=False, compare=False)


class TaskFollower:
    """Polls every followed task with a few worker threads, with the client in use (`client`,
    shared with the processor: a reload swaps it for both). While `pauses` says the API key was
    rejected, nothing is polled; `on_key_rejected` tells the daemon, which pauses all work."""

    def __init__(
        self,
        client: ClientRef,
        store: Store,
        pauses: Pauses,
        *,
        poll_interval: float | None = None,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_key_rejected: Callable[[KeyRejected], None] | None = None,
        on_output: Callable[[Path], None] | None = None,
        on_finished: Callable[[Path, str], None] | None = None,
        on_store_lost: Callable[[StoreUnavailable], None] | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self._client = client
        self._store = store
        self._pauses = pauses
        self.poll_interval = resolve_poll_interval(poll_interval, client.current.base_url, env)
        self.workers = max(1, workers)
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_key_rejected = on_key_rejected
        self.on_output = on_output
        self.on_finished = on_finished
        self.on_store_lost = on_store_lost
        self._heap: list[_Followed] = []
        self._followed: dict[str, Path] = {}  # task id -> its file
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = 0
        self._threads: list[threading.Thread] = []

    def _next_poll(self) -> float:
        # The full interval plus up to 20% jitter, so many tasks do not poll in lockstep.
        return self.clock() + self.poll_interval * (1.0 + 0.2 * self.rng.random())

    def follow(self, path: Path, task_id: str, output_dir: Path) -> None:
        """Poll `task_id` (of `path`) until it ends; a task already followed is not added twice."""
        with self._cond:
            if task_id in self._followed:
                return
            self._followed[task_id] = path
            heapq.heappush(self._heap, _Followed(self._next_poll(), path, task_id, output_dir))
            self._cond.notify()

    def followed_paths(self) -> set[Path]:
        """The files whose tasks are followed now (a snapshot)."""
        with self._cond:
            return set(self._followed.values())

    def pending(self) -> int:
        """Tasks followed and not finished (waiting for their next poll or being polled)."""
        with self._cond:
            return len(self._heap) + self._busy

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._work, name=f"runwatchd-tasks-{n}",
                                          daemon=True) for n in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; a download under way may finish within `timeout` (its temp file is
        removed at the next start otherwise, and the task is polled again)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def is_alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._heap or self._paused() or self._heap[0].due > self.clock()
                ):
                    wait = 1.0 if not self._heap or self._paused() else (
                        self._heap[0].due - self.clock())
                    self._cond.wait(max(0.005, min(wait, 1.0)))
                if self._stopping:
                    return
                item = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._poll(item)
            except StoreUnavailable as e:  # the daemon holds new work; this task waits too
                if self.on_store_lost:
                    self.on_store_lost(e)
                with self._cond:  # still ours (a _finish cut short dropped it): keep its lease
                    self._followed[item.task_id] = item.path
                self._requeue(item, STORE_RETRY)
            except Exception:  # a bug here must not end following for every other task
                log.exception("unexpected error following task %s", item.task_id)
                item.errors += 1
                self._requeue(item, 60.0)
            finally:
                with self._cond:
                    self._busy -= 1

    def _paused(self) -> bool:
        return self._pauses.key_rejected is not None

    def _requeue(self, item: _Followed, delay: float | None = None) -> None:
        item.due = self.clock() + delay if delay is not None else self._next_poll()
        with self._cond:
            heapq.heappush(self._heap, item)
            self._cond.notify()

    def _drop(self, item: _Followed) -> None:
        with self._cond:
            self._followed.pop(item.task_id, None)

    def _backoff(self, item: _Followed) -> float:
        item.errors += 1
        return min(MAX_BACKOFF, max(self.poll_interval, 0.05) * 2.0 ** min(item.errors, 8))

    def _poll(self, item: _Followed) -> None:
        record = self._store.get(item.path)
        if record is None or record.task_id != item.task_id or record.state != FileState.RUNNING:
            # The file was replaced or retried meanwhile; its new version has its own task.
            log.info("no longer following task %s: %s moved on", item.task_id, item.path)
            self._drop(item)
            return
        try:
            task = self._client.current.get_task(item.task_id)
        except KeyRejected as e:
            self._requeue(item)
            if self.on_key_rejected:
                self.on_key_rejected(e)
            return
        except InputRejected as e:  # 404: the task is gone (deleted elsewhere)
            self._finish(item, TaskStatus.CANCELLED, failure=f"task disappeared: {e}",
                         code="RUNWATCHD.GONE")
            return
        except RunwayError as e:
            log.warning("polling task %s of %s failed: %s", item.task_id, item.path, e)
            self._requeue(item, self._backoff(item))
            return
        status = task.get("status")
        if not isinstance(status, str):
            status = ""  # not a status we know: keep polling (it is not hashable, may be a list)
        credits = credits_of(task)
        if status not in FINAL_TASK_STATUSES:
            if record.task_status != status:
                record.task_status = status
                self._store.put(record)
                write_task_sidecar(item.path, record, status, credits=credits)
                log.info("task %s for %s is %s", item.task_id, item.path.name, status)
            item.errors = 0
            self._requeue(item)
            return
        if status == TaskStatus.SUCCEEDED:
            self._bring_home(item, record, task.get("output"), credits)
        else:
            self._finish(item, status, failure=self._scrub(task.get("failure")),
                         code=self._scrub(task.get("failureCode"), 200), credits=credits)

    def _scrub(self, text: object, limit: int = MAX_FAILURE_CHARS) -> str | None:
        """Text from the API as it may be stored and shown: without the secret, bounded."""
        if text is None:
            return None
        return self._client.current.scrub(str(text), limit)

    def _bring_home(self, item: _Followed, record: FileRecord, urls: object,
                    credits: Credits) -> None:
        """Download a SUCCEEDED task's outputs, or end it FAILED with the reason when they can
        never be downloaded; retry later what may work later."""
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            self._finish(item, TaskStatus.FAILED, credits=credits, code="RUNWATCHD.OUTPUT",
                         failure=self._scrub(f"the task's output is not a list of URLs: {urls!r}",
                                             400))
            return
        try:
            outputs = self._download(item, record, urls)
        except DownloadRefused as e:  # a URL or size that no retry can make acceptable
            self._finish(item, TaskStatus.FAILED, failure=self._scrub(str(e)),
                         code=DOWNLOAD_CODE, credits=credits)
            return
        except DiskFull as e:
            # Not the task's fault: wait for space, saying so once rather than every poll.
            if not item.disk_full_said:
                item.disk_full_said = True
                log.error("task %s for %s: %s; retrying later", item.task_id, item.path.name, e)
                self._store.update(item.path, error=f"waiting for disk space: {e}")
            self._requeue(item, self._backoff(item))
            return
        except KeyRejected as e:  # outputs on the API's own host: not this download's fault
            self._requeue(item)
            if self.on_key_rejected:
                self.on_key_rejected(e)
            return
        except RunwayError as e:
            item.download_attempts += 1
            if item.download_attempts >= MAX_DOWNLOAD_ATTEMPTS:
                self._finish(item, TaskStatus.FAILED, code=DOWNLOAD_CODE, credits=credits,
                             failure=self._scrub(f"downloading the outputs failed "
                                                 f"{item.download_attempts} times: {e}"))
                return
            # The next poll fetches the task again, with fresh output URLs.
            log.warning("downloading outputs of task %s for %s failed (%d of %d): %s",
                        item.task_id, item.path.name, item.download_attempts,
                        MAX_DOWNLOAD_ATTEMPTS, e)
            self._store.update(item.path, error=f"downloading outputs failed: {e}")
            self._requeue(item, self._backoff(item))
            return
        self._finish(item, TaskStatus.SUCCEEDED, outputs=outputs, credits=credits)

    def _download(self, item: _Followed, record: FileRecord, urls: list[str]) -> list[str]:
        """Each URL into its own file, named after the whole source name (outputs.py); a name
        another file holds is skipped, never overwritten. Each name is journaled before its bytes
        are written, so a later attempt of this very task replaces its own files (a crash
        included), not anyone else's."""
        base = item.path.parent
        ours = {base / name for name in record.outputs}
        client = self._client.current
        names: list[str] = []
        first = 1
        for url in urls:
            chosen: list[int] = []

            def choose(content_type: str | None, url: str = url, first: int = first) -> Path:
                ext = output_ext(content_type, url, record.endpoint)
                dest, n = free_output(item.output_dir, item.path.name, first, ext, ours)
                chosen[:] = [n]
                # Journaled before a byte is written: a crash between the download and the
                # journal must find this name ours at the restart, not someone else's file.
                ours.add(dest)
                self._store.update_if(item.path, FileState.RUNNING,
                                      outputs=[*names, _relative(dest, base)])
                if self.on_output:
                    self.on_output(dest)  # tell the watcher first: this file is ours, not media
                return dest

            fetched = client.download_output(url, item.output_dir, choose)
            first = chosen[-1] + 1
            names.append(_relative(fetched.path, base))
            self._store.update_if(item.path, FileState.RUNNING, outputs=list(names))
        return names

    def _finish(self, item: _Followed, status: str, *, outputs: list[str] | None = None,
                failure: str | None = None, code: str | None = None,
                credits: Credits = (None, None)) -> None:
        record = self._store.get(item.path)
        if record is None or record.task_id != item.task_id:
            self._drop(item)
            return  # the file was replaced meanwhile; its new version has its own record
        succeeded = status == TaskStatus.SUCCEEDED
        record.state = FileState.SUCCEEDED if succeeded else FileState.TASK_FAILED
        record.task_status, record.outputs = status, outputs or []
        record.failure, record.failure_code = failure, code
        record.error = None if succeeded else f"task {status}: {failure}"
        # Sidecar first: a crash between the two leaves the journal at "running", so the restart
        # polls the task again and writes both; the other order leaves a stale sidecar for good.
        write_task_sidecar(item.path, record, status, failure=failure, code=code, credits=credits)
        self._store.put(record)
        # Followed until the row is final: the daemon gives up the file's lease once it is not
        # followed, and a "running" row without a lease is another's (or our own) to take over.
        self._drop(item)
        if succeeded:
            log.info("task %s for %s SUCCEEDED: %s", item.task_id, item.path.name,
                     ", ".join(record.outputs))
        else:
            log.error("task %s for %s %s: %s (%s); not resubmitted (`runwatchd retry %s` does)",
                      item.task_id, item.path.name, status, failure, code, item.path)
        if self.on_finished:
            self.on_finished(item.path, status)


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
