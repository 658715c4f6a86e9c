"""Generation requests: validation like Runway's, and a task lifecycle computed from time.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .state import issue
from .storage import iso_z

VIDEO = (
    "image_to_video",
    "text_to_video",
    "video_to_video",
    "character_performance",
    "video_upscale",
)
IMAGE = ("text_to_image", "image_upscale")
AUDIO = ("sound_effect", "text_to_speech", "speech_to_speech", "voice_isolation", "voice_dubbing")
ENDPOINTS = VIDEO + IMAGE + AUDIO
OUTPUT_TYPES = {"mp4": "video/mp4", "png": "image/png", "mp3": "audio/mpeg"}
REQUIRED: dict[str, tuple[str, ...]] = {
    "image_to_video": ("model", "promptImage"),
    "text_to_video": ("model", "promptText"),
    "video_to_video": ("model", "videoUri", "promptText"),
    "text_to_image": ("model", "promptText"),
    "character_performance": ("model", "character", "reference"),
    "video_upscale": ("model", "videoUri"),
    "image_upscale": ("model", "imageUri"),
    "sound_effect": ("model", "promptText"),
    "text_to_speech": ("model", "promptText", "voice"),
    "speech_to_speech": ("model", "media", "voice"),
    "voice_isolation": ("model", "audioUri"),
    "voice_dubbing": ("model", "audioUri", "targetLang"),
}
URI_FIELDS = ("promptImage", "videoUri", "imageUri", "audioUri")
TYPED_MEDIA = {
    "character": ("image", "video"),
    "reference": ("video",),
    "media": ("audio", "video"),
}
URI_PREFIXES = ("runway://", "https://", "data:")
FAIL_CODE = re.compile(r"[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+")
STATUSES = ("PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


def output_ext(endpoint: str) -> str:
    """File type of an endpoint's outputs."""
    return "mp4" if endpoint in VIDEO else "png" if endpoint in IMAGE else "mp3"


def cost_of(endpoint: str, body: dict[str, Any]) -> int:
    """Credits a task costs: 5 per video second (like gen4_turbo), flat for images and audio."""
    if endpoint in VIDEO:
        duration = body.get("duration")
        return 5 * (duration if isinstance(duration, int) and duration > 0 else 5)
    return 2 if endpoint in IMAGE else 1


def runway_uris(
    value: object, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every runway:// string in a JSON value, at any depth, with its path."""
    if isinstance(value, str) and value.startswith("runway://"):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from runway_uris(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from runway_uris(item, (*path, index))


def validate(endpoint: str, body: object, uri_known: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Every problem of a generation body, as `issues`; [] if Runway would accept its shape."""
    if not isinstance(body, dict):
        return [issue([], "Expected object, received " + type(body).__name__)]
    problems = [issue([name], "Required") for name in REQUIRED[endpoint] if body.get(name) is None]
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        problems.append(issue(["model"], "Expected a model name"))
    for name in ("promptText", "targetLang"):
        text = body.get(name)
        if text is not None and (not isinstance(text, str) or not 1 <= len(text) <= 1000):
            problems.append(issue([name], "String must contain between 1 and 1000 characters"))
    ratio = body.get("ratio")
    if ratio is not None and (not isinstance(ratio, str) or not re.fullmatch(r"\d+:\d+", ratio)):
        problems.append(issue(["ratio"], "Expected a ratio such as '1280:720'"))
    for name, low, high in (("duration", 1, 60), ("seed", 0, 4294967295)):
        value = body.get(name)
        if value is not None and (type(value) is not int or not low <= value <= high):
            problems.append(issue([name], f"Expected an integer between {low} and {high}"))
    for name in URI_FIELDS:
        value = body.get(name)
        if isinstance(value, list) and name == "promptImage":
            for i, item in enumerate(value):
                if not isinstance(item, dict) or not _is_media_uri(item.get("uri")):
                    problems.append(issue([name, i, "uri"], "Expected an object with a media uri"))
        elif value is not None and not _is_media_uri(value):
            problems.append(issue([name], "Expected an HTTPS URL, a data URI or a runway:// URI"))
    for name, types in TYPED_MEDIA.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(issue([name], "Expected object"))
            continue
        if value.get("type") not in types:
            problems.append(issue([name, "type"], f"Expected one of: {', '.join(types)}"))
        if not _is_media_uri(value.get("uri")):
            problems.append(
                issue([name, "uri"], "Expected an HTTPS URL, a data URI or a runway:// URI")
            )
    voice = body.get("voice")
    if voice is not None and not isinstance(voice, (dict, str)):
        problems.append(issue(["voice"], "Expected object"))
    for path, uri in runway_uris(body):
        if not uri_known(uri):
            problems.append(
                issue(list(path), "Invalid runway:// URI: no such upload, or it has expired")
            )
    return problems


def _is_media_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith(URI_PREFIXES)


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
            str(body.get("model")),
            now,
            cost_of(endpoint, body),
            self.epoch,
            self.failure_for(body.get("promptText")),
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
        return OUTPUT_TYPES[ext], output_bytes(f"{task_id}/{stem}", ext)

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
