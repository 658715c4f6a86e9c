"""The emulator's routes: which handler serves a path, how it is counted, which faults reach it.

Fault scopes are categories of routes: "api" is every /v1 call, "tasks" the generation and task
calls among them, "generate" the generation POSTs alone, "storage" the presigned upload POST, "outputs" the downloads. Introspection
(/_emulator/...) has no category, so faults never hide the emulator's own state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .bodies import ENDPOINTS


@dataclass(frozen=True)
class Route:
    """One endpoint: `label` names it in counters, `categories` say which fault scopes hit it."""

    method: str
    pattern: re.Pattern[str]
    handler: str
    label: str
    categories: tuple[str, ...] = ()
    json_reply: bool = True


def _route(
    method: str, pattern: str, handler: str, label: str, *cats: str, json_body: bool = True
) -> Route:
    return Route(method, re.compile(pattern), handler, label, cats, json_body)


ROUTES = (
    _route("GET", r"/v1/organization", "organization", "GET /v1/organization", "api"),
    _route("POST", r"/v1/uploads", "create_upload", "POST /v1/uploads", "api"),
    _route(
        "POST",
        rf"/v1/({'|'.join(map(re.escape, ENDPOINTS))})",
        "generate",
        "POST /v1/{endpoint}",
        "api",
        "tasks",
        "generate",
    ),
    _route("GET", r"/v1/tasks/([^/]+)", "get_task", "GET /v1/tasks/{id}", "api", "tasks"),
    _route("DELETE", r"/v1/tasks/([^/]+)", "delete_task", "DELETE /v1/tasks/{id}", "api", "tasks"),
    _route(
        "POST",
        r"/_storage/upload/([^/]+)",
        "upload",
        "POST /_storage/upload",
        "storage",
        json_body=False,
    ),
    _route(
        "GET", r"/_outputs/([^/]+)/([^/]+)", "output", "GET /_outputs", "outputs", json_body=False
    ),
    _route(
        "HEAD", r"/_outputs/([^/]+)/([^/]+)", "output", "HEAD /_outputs", "outputs", json_body=False
    ),
    _route("GET", r"/_emulator/stats", "em_stats", "GET /_emulator/stats"),
    _route("GET", r"/_emulator/objects", "em_objects", "GET /_emulator/objects"),
    _route("GET", r"/_emulator/faults", "em_faults", "GET /_emulator/faults"),
    _route("POST", r"/_emulator/faults", "em_set_faults", "POST /_emulator/faults"),
    _route("POST", r"/_emulator/reset", "em_reset", "POST /_emulator/reset"),
)


@dataclass
class Reply:
    """A response to send: status, body bytes, content type, extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def json_reply(status: int, data: Any) -> Reply:
    """A JSON response."""
    return Reply(status, json.dumps(data).encode())


def match_route(method: str, path: str) -> tuple[Route | None, re.Match[str] | None]:
    """The route serving this method and path, and its match (for the path's parameters)."""
    for route in ROUTES:
        if route.method == method:
            match = route.pattern.fullmatch(path)
            if match:
                return route, match
    return None, None


def label_of(method: str, path: str, route: Route | None, match: re.Match[str] | None) -> str:
    """Counter key of a request: the route template, with generation endpoints kept apart."""
    if route is None or match is None:
        return f"{method} {'/v1/*' if path.startswith('/v1/') else 'other'}"
    if route.handler == "generate":
        return f"POST /v1/{match.group(1)}"
    return route.label


def s3_code(status: int) -> str:
    """The S3 error Code an injected status shows in the storage's XML body."""
    return {429: "SlowDown", 503: "SlowDown", 500: "InternalError", 404: "NoSuchKey"}.get(
        status, "ServiceUnavailable"
    )
