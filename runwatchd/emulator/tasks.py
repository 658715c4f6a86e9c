"""Generation tasks: a lifecycle computed from time, and the task replies Runway gives.

No thread runs per task. The board keeps a FIFO of waiting tasks and the set of running ones,
and `_advance(now)` replays, in time order, every start and finish that happened since the last
look: a task waits `pending_seconds` (PENDING), then waits for one of `max_concurrent_tasks`
slots (THROTTLED, as Runway queues tasks past an account's concurrency), then runs for
`task_seconds` (RUNNING, with progress) and ends SUCCEEDED, or FAILED if its prompt carries a
failure marker. An injected clock makes the whole lifecycle testable without sleeping.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .bodies import OUTPUT_TYPES, cost_of, model_of, output_ext, prompt_of
from .storage import iso_z

FAIL_CODE = re.compile(r"[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+")
STATUSES = ("PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


@dataclass
class Task:
    """One generation; its status is derived from the board's replay, never stored per tick."""

    id: str
    endpoint: str
    model: str
    created: float
    cost: int
    epoch: int
    failure: tuple[str, str] | None  # (failureCode, failure text)
    start: float | None = None
    end: float | None = None
    done: bool = False
    cancelled: bool = False
    deleted: bool = False
    input_uris: list[str] = field(default_factory=list)

    @property
    def refunded(self) -> bool:
        """Cancelled before it ran: its credits went back (Runway reports a cost of 0)."""
        return self.cancelled and self.start is None


class TaskBoard:
    """All tasks of the emulator and their lifecycle; thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        task_seconds: float,
        pending_seconds: float,
        max_concurrent: int,
        outputs_per_task: int,
        fail_marker: str,
        fail_prompts: tuple[str, ...],
    ) -> None:
        self.clock = clock
        self.task_seconds, self.pending_seconds = task_seconds, pending_seconds
        self.max_concurrent, self.outputs_per_task = max_concurrent, outputs_per_task
        self.fail_marker, self.fail_prompts = fail_marker, fail_prompts
        # Set by tests: the Content-Type outputs are served as (else their extension's), and the
        # `failure` text of failed tasks (else Runway's usual wording), e.g. one echoing a secret.
        self.output_type: str | None = None
        self.failure_text: str | None = None
        self.epoch = 0
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._waiting: deque[Task] = deque()
        self._running: list[Task] = []
        self._t_sim = float("-inf")

    def failure_for(self, prompt: object) -> tuple[str, str] | None:
        """(code, text) if the prompt asks for a failure: "FAIL:" prefix (optionally followed by a
        code such as "FAIL:INTERNAL.BAD_OUTPUT.CODE01") or any of `fail_prompts` inside it."""
        if not isinstance(prompt, str):
            return None
        code = None
        if self.fail_marker and prompt.startswith(self.fail_marker):
            match = FAIL_CODE.match(prompt[len(self.fail_marker) :].lstrip())
            code = match.group(0) if match else "SAFETY.INPUT.TEXT"
        elif any(marker in prompt for marker in self.fail_prompts):
            code = "SAFETY.INPUT.TEXT"
        if code is None:
            return None
        if self.failure_text is not None:
            return code, self.failure_text
        if code.startswith("SAFETY"):
            return (
                code,
                "Our content moderation system flagged this input. Please try a different input.",
            )
        return code, "An unexpected error occurred while generating. Please try again."

    def create(self, endpoint: str, body: dict[str, Any], uris: list[str]) -> Task:
        """A new task, queued now."""
        now = self.clock()
        task = Task(
            str(uuid.uuid4()),
            endpoint,
            model_of(endpoint, body),
            now,
            cost_of(endpoint, body),
            self.epoch,
            self.failure_for(prompt_of(body)),
            input_uris=uris,
        )
        with self._lock:
            self._advance(now)
            self._tasks[task.id] = task
            self._waiting.append(task)
            self._advance(now)
        return task

    def _advance(self, now: float) -> None:
        """Replay starts and finishes up to `now`, earliest first (caller holds the lock)."""
        while True:
            first_end = min(self._running, key=lambda t: t.end or 0.0, default=None)
            t_end = (
                first_end.end
                if first_end is not None and first_end.end is not None
                else float("inf")
            )
            t_start = float("inf")
            if self._waiting and len(self._running) < self.max_concurrent:
                t_start = max(self._waiting[0].created + self.pending_seconds, self._t_sim)
            if min(t_start, t_end) > now:
                return
            if first_end is not None and t_end <= t_start:
                self._running.remove(first_end)
                first_end.done = True
                self._t_sim = t_end
            else:
                task = self._waiting.popleft()
                task.start, task.end = t_start, t_start + self.task_seconds
                self._running.append(task)
                self._t_sim = t_start

    def _status(self, task: Task, now: float) -> str:
        if task.cancelled:
            return "CANCELLED"
        if task.done:
            return "FAILED" if task.failure else "SUCCEEDED"
        if task.start is not None:
            return "RUNNING"
        return "PENDING" if now < task.created + self.pending_seconds else "THROTTLED"

    def _live(self, task_id: str, now: float) -> Task | None:
        """The task brought up to `now`, or None if unknown or deleted (caller holds the lock)."""
        self._advance(now)
        task = self._tasks.get(task_id)
        return None if task is None or task.deleted else task

    def view(self, task_id: str, base_url: str) -> dict[str, Any] | None:
        """GET /v1/tasks/{id} body, or None if there is no such task."""
        now = self.clock()
        with self._lock:
            task = self._live(task_id, now)
            if task is None:
                return None
            status = self._status(task, now)
            out: dict[str, Any] = {
                "id": task.id,
                "status": status,
                "createdAt": iso_z(task.created),
            }
            if status == "RUNNING":
                elapsed = now - (task.start or now)
                out["progress"] = (
                    round(min(1.0, elapsed / self.task_seconds), 3) if self.task_seconds else 1.0
                )
            elif status == "SUCCEEDED":
                ext = output_ext(task.endpoint)
                out["output"] = [
                    f"{base_url}/_outputs/{task.id}/{n}.{ext}" for n in range(self.outputs_per_task)
                ]
            elif status == "FAILED" and task.failure:
                out["failureCode"], out["failure"] = task.failure
            # Runway's shapes: the most a task may charge while it waits or runs, what it did
            # charge once it ended (0 when fully refunded).
            if status in ("PENDING", "THROTTLED", "RUNNING"):
                out["estimatedCost"] = {"credits": task.cost}
            else:
                out["cost"] = {"credits": 0 if task.refunded else task.cost}
            return out

    def cancel(self, task_id: str) -> Task | None:
        """DELETE: cancel a task that has not finished, delete one that has; None if unknown."""
        now = self.clock()
        with self._lock:
            task = self._live(task_id, now)
            if task is None:
                return None
            if task.done or task.cancelled:
                task.deleted = True
            elif task.start is None:
                self._waiting.remove(task)
                task.cancelled = True
            else:
                self._running.remove(task)
                task.cancelled = True
            return task

    def output(self, task_id: str, name: str) -> tuple[str, bytes] | None:
        """(content type, bytes) of one output of a SUCCEEDED task, or None."""
        now = self.clock()
        with self._lock:
            self._advance(now)
            task = self._tasks.get(task_id)
            if task is None or task.deleted or self._status(task, now) != "SUCCEEDED":
                return None
        ext = output_ext(task.endpoint)
        stem, _, suffix = name.partition(".")
        if suffix != ext or not stem.isdigit() or int(stem) >= self.outputs_per_task:
            return None
        return self.output_type or OUTPUT_TYPES[ext], output_bytes(f"{task_id}/{stem}", ext)

    def counts(self) -> dict[str, int]:
        """Tasks of the current epoch (since the last reset) by status."""
        now = self.clock()
        out = dict.fromkeys(STATUSES, 0)
        with self._lock:
            self._advance(now)
            for task in self._tasks.values():
                if task.epoch == self.epoch:
                    out[self._status(task, now)] += 1
        return out

    def daily_by_model(self) -> dict[str, int]:
        """Generations per model in the last 24 h, for /v1/organization's usage."""
        since = self.clock() - 86400
        out: dict[str, int] = {}
        with self._lock:
            for task in self._tasks.values():
                if task.created >= since:
                    out[task.model] = out.get(task.model, 0) + 1
        return out

    def reset(self, forget: bool) -> None:
        """Start a new counting epoch; with `forget`, drop every task as well."""
        with self._lock:
            self.epoch += 1
            if forget:
                self._tasks.clear()
                self._waiting.clear()
                self._running.clear()


def output_bytes(seed: str, ext: str) -> bytes:
    """Deterministic, plausible output files of a few KB (a real PNG for images)."""
    digest = hashlib.sha256(seed.encode()).digest()
    if ext == "png":
        return _png(64, 64, digest[:3])
    filler = b"".join(hashlib.sha256(digest + i.to_bytes(2, "big")).digest() for i in range(128))
    if ext == "mp4":
        ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 512, b"isom", b"mp42")
        return ftyp + struct.pack(">I4s", 8 + len(filler), b"mdat") + filler
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + filler


def _png(width: int, height: int, rgb: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + rgb * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
