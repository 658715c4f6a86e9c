"""Counters of what clients did to the emulator, for tests and benchmarks to assert on.

Tests prove behaviour by counting ("one upload per file", "no generation submitted twice"),
so every counter here has a meaning a test can rely on:

- requests: {"POST /v1/uploads": {"200": 3, "429": 1}} by route template and status
  ("dropped" when the connection was closed without a reply)
- api_calls_total: every /v1 request, answered or not; auth_failures: 401s
- uploads_created: slots handed out; uploads_completed: 204s from storage
- bytes_received: body bytes read at storage, failed attempts included;
  bytes_stored: bytes of completed uploads (their difference is wasted transfer)
- tasks_created; tasks_per_input_uri: generations that referenced each runway:// URI
"""

from __future__ import annotations

import threading
from typing import Any


class ApiError(Exception):
    """A JSON error reply of the API: status, `error` text and optional zod-like `issues`."""

    def __init__(self, status: int, error: str, issues: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.issues = issues or []

    def body(self) -> dict[str, Any]:
        """The reply body, shaped like Runway's: {"error": ..., "issues": [...]} (issues if any)."""
        out: dict[str, Any] = {"error": self.error}
        if self.issues:
            out["issues"] = self.issues
        return out


def issue(path: list[str | int], message: str) -> dict[str, Any]:
    """One entry of `issues`, as Runway's validation errors shape them."""
    return {"path": list(path), "message": message}


class Counters:
    """Thread-safe counters; `snapshot()` returns plain JSON-ready data."""

    SCALARS = (
        "api_calls_total",
        "auth_failures",
        "version_failures",
        "uploads_created",
        "uploads_completed",
        "uploads_rejected",
        "bytes_received",
        "bytes_stored",
        "tasks_created",
        "tasks_cancelled",
        "outputs_served",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to zero (POST /_emulator/reset)."""
        with self._lock:
            self._scalars: dict[str, int] = dict.fromkeys(self.SCALARS, 0)
            self._requests: dict[str, dict[str, int]] = {}
            self._per_uri: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        """Increase one scalar counter; unknown names are a programming error."""
        with self._lock:
            self._scalars[name] += amount

    def request(self, route: str, status: int | str) -> None:
        """Count one request by route template and final status."""
        key = str(status)
        with self._lock:
            by_status = self._requests.setdefault(route, {})
            by_status[key] = by_status.get(key, 0) + 1

    def task_inputs(self, uris: list[str]) -> None:
        """Count a created task against every runway:// URI it used (each once per task)."""
        with self._lock:
            for uri in dict.fromkeys(uris):
                self._per_uri[uri] = self._per_uri.get(uri, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A deep copy safe to serialise while requests go on."""
        with self._lock:
            out: dict[str, Any] = dict(self._scalars)
            out["requests"] = {route: dict(s) for route, s in self._requests.items()}
            out["tasks_per_input_uri"] = dict(self._per_uri)
            return out
