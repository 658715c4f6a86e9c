"""Follow submitted generations to their end and bring the outputs home.

One thread follows every task: a heap of (next poll time, task). Runway asks for polls no faster
than every 5 s, with jitter, and THROTTLED/PENDING are waiting, not errors. Outputs are downloaded
next to the source's rule output folder as `<stem><ext>`, `<stem>_2<ext>`, ... written atomically.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from runwatchd.client import RunwayClient
from runwatchd.errors import InputRejected, KeyRejected, RetryableError, RunwayError
from runwatchd.journal import Journal
from runwatchd.pipeline import write_task_sidecar

log = logging.getLogger(__name__)

MIN_POLL = 5.0
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(order=True)
class _Followed:
    due: float
    path: Path = field(compare=False)
    task_id: str = field(compare=False)
    output_dir: Path = field(compare=False)
    errors: int = field(default=0, compare=False)


class TaskFollower:
    """Polls every followed task from one thread; `on_key_rejected` pauses the daemon."""

    def __init__(
        self,
        client: RunwayClient,
        journal: Journal,
        *,
        poll_interval: float = MIN_POLL,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_key_rejected: Callable[[KeyRejected], None] | None = None,
        on_output: Callable[[Path], None] | None = None,
        on_finished: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.poll_interval = max(poll_interval, 0.0)
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_key_rejected = on_key_rejected
        self.on_output = on_output
        self.on_finished = on_finished
        self._heap: list[_Followed] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = 0
        self._thread: threading.Thread | None = None
        self.paused = threading.Event()

    def _next_poll(self) -> float:
        # Full interval plus up to 20% jitter, so many tasks do not poll in lockstep.
        return self.clock() + self.poll_interval * (1.0 + 0.2 * self.rng.random())

    def follow(self, path: Path, task_id: str, output_dir: Path) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Followed(self._next_poll(), path, task_id, output_dir))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="runwatchd-tasks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._heap or self.paused.is_set() or self._heap[0].due > self.clock()
                ):
                    wait = 1.0 if not self._heap or self.paused.is_set() else (
                        self._heap[0].due - self.clock())
                    self._cond.wait(max(0.01, min(wait, 1.0)))
                if self._stopping:
                    return
                item = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._poll(item)
            except Exception:  # a bug here must not end following for every other task
                log.exception("unexpected error following task %s", item.task_id)
                item.errors += 1
                self._requeue(item, 60.0)
            finally:
                with self._cond:
                    self._busy -= 1

    def _requeue(self, item: _Followed, delay: float | None = None) -> None:
        item.due = self.clock() + delay if delay is not None else self._next_poll()
        with self._cond:
            heapq.heappush(self._heap, item)

    def _poll(self, item: _Followed) -> None:
        try:
            task = self.client.get_task(item.task_id)
        except KeyRejected as e:
            self._requeue(item)
            if self.on_key_rejected:
                self.on_key_rejected(e)
            return
        except InputRejected as e:  # 404: the task is gone (deleted elsewhere)
            self._finish(item, "CANCELLED", failure=f"task disappeared: {e}", code="RUNWATCHD.GONE")
            return
        except RetryableError as e:
            item.errors += 1
            log.warning("polling task %s of %s failed: %s", item.task_id, item.path, e)
            self._requeue(item, min(300.0, self.poll_interval * 2 ** min(item.errors, 6)))
            return
        status = task.get("status", "")
        if status not in FINAL:
            record = self.journal.get(item.path)
            if record and record.task_status != status:
                record.task_status = status
                self.journal.put(record)
                write_task_sidecar(item.path, record, status, rule_name=None)
                log.info("task %s for %s is %s", item.task_id, item.path.name, status)
            self._requeue(item)
            return
        if status == "SUCCEEDED":
            try:
                outputs = self._download(item, task.get("output") or [])
            except RunwayError as e:
                item.errors += 1
                log.warning("downloading outputs of %s failed: %s", item.task_id, e)
                self._requeue(item, min(300.0, self.poll_interval * 2 ** min(item.errors, 6)))
                return
            self._finish(item, status, outputs=outputs)
        else:
            self._finish(item, status, failure=task.get("failure"), code=task.get("failureCode"))

    def _download(self, item: _Followed, urls: list[str]) -> list[str]:
        item.output_dir.mkdir(parents=True, exist_ok=True)
        stem = item.path.name.rsplit(".", 1)[0]
        names = []
        for n, url in enumerate(urls, start=1):
            ext = Path(urlparse(url).path).suffix or ".bin"
            dest = item.output_dir / (f"{stem}{ext}" if n == 1 else f"{stem}_{n}{ext}")
            if self.on_output:
                self.on_output(dest)  # tell the watcher first: this file is ours, not new media
            self.client.download(url, dest)
            names.append(_relative(dest, item.path.parent))
        return names

    def _finish(self, item: _Followed, status: str, *, outputs: list[str] | None = None,
                failure: str | None = None, code: str | None = None) -> None:
        record = self.journal.get(item.path)
        if record is None or record.task_id != item.task_id:
            return  # the file was replaced meanwhile; its new version has its own record
        record.state = "succeeded" if status == "SUCCEEDED" else "task_failed"
        record.task_status, record.outputs = status, outputs or []
        record.failure, record.failure_code = failure, code
        record.error = failure if status != "SUCCEEDED" else None
        self.journal.put(record)
        write_task_sidecar(item.path, record, status, rule_name=None, failure=failure, code=code)
        if status == "SUCCEEDED":
            log.info("task %s for %s SUCCEEDED: %s", item.task_id, item.path.name,
                     ", ".join(record.outputs))
        else:
            log.error("task %s for %s %s: %s (%s)", item.task_id, item.path.name, status,
                      failure, code)
        if self.on_finished:
            self.on_finished(item.path, status)


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
