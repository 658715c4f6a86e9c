"""The status page's JSON API; the page itself uses nothing else.

    GET  /api/summary                     totals per state, the daemon's health
    GET  /api/files?q=&display=&days=&limit=
                                          files of the last days, newest first
    POST /api/retry   {"path": "..."}     `runwatchd retry FILE`; needs the bearer token
    GET  /api/files/ID/thumb              a still's thumbnail (the image itself, size-capped)
    GET  /api/files/ID/outputs/N          a generation's output N (N from the file's listing)
    GET  /api/files/ID/outputs/N/thumb    an output's thumbnail, when it is an image

Files are named by the opaque ids /api/files lists, never by a path: a request can only reach
files the store knows, inside the watched folders and their output folders.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from runwatchd.service.web import media, view
from runwatchd.service.web.catalog import Catalog
from runwatchd.service.web.media import FileReply
from runwatchd.service.web.source import RetryOutcome, WebSource
from runwatchd.store.base import Store

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
DEFAULT_DAYS, MAX_DAYS = 7.0, 366.0
DEFAULT_LIMIT, MAX_LIMIT = 500, 5000
_FILE_ROUTE = re.compile(r"/api/files/([0-9a-f]{24})/(thumb|outputs/(\d{1,4})(/thumb)?)")
# A flood of wrong tokens must not flood the journal: one warning a minute, with the count.
REFUSAL_LOG_EVERY = 60.0
_RETRY_STATUS = {RetryOutcome.RETRYING: 202, RetryOutcome.UNKNOWN: 404,
                 RetryOutcome.NOT_RETRYABLE: 409, RetryOutcome.CHANGED: 409}


@dataclass
class Request:
    """What a handler needs of an HTTP request (headers with lower-case names)."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str = ""


@dataclass
class Response:
    """A reply: bytes, or an open file to stream."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file: FileReply | None = None


def json_response(status: int, data: object, headers: dict[str, str] | None = None) -> Response:
    # ensure_ascii: a name with invalid UTF-8 (a surrogate escape) still travels as valid JSON.
    body = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(status, body, "application/json", dict(headers or {}))


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"error": message}, headers)


class WebApi:
    """The API's handlers over a store and a WebSource."""

    def __init__(self, store: Store, source: WebSource, *, token: str | None = None,
                 metrics: Callable[[], tuple[bytes, str]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.source = source
        self.catalog = Catalog(store)
        self._token = token.encode() if token else None
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._refused = 0
        self._next_refusal_log = float("-inf")

    @property
    def retry_enabled(self) -> bool:
        return self._token is not None

    def handle(self, request: Request) -> Response | None:
        """The reply for an API route (or /metrics); None when the path is not one."""
        path, method = request.path, request.method
        if path == "/metrics" and self._metrics is not None:
            if method != "GET":
                return error(405, "GET only", {"Allow": "GET"})
            body, content_type = self._metrics()
            return Response(200, body, content_type)
        if not path.startswith("/api/"):
            return None
        if path == "/api/retry":
            if method != "POST":
                return error(405, "POST only", {"Allow": "POST"})
            return self.retry(request)
        if method != "GET":
            return error(405, "GET only", {"Allow": "GET"})
        if path == "/api/summary":
            return self.summary()
        if path == "/api/files":
            return self.files(request.query)
        match = _FILE_ROUTE.fullmatch(path)
        if match is not None:
            fid, what, n, thumb = match.groups()
            output = int(n) if n is not None else None
            return self.send_file(fid, output, thumbnail=what == "thumb" or bool(thumb),
                                  range_header=request.headers.get("range"))
        return error(404, "no such endpoint")

    # -- JSON ------------------------------------------------------------------------------

    def summary(self) -> Response:
        now = self._clock()
        waiting = self.source.waiting()
        counts = self.store.counts()
        health = self.source.health()
        return json_response(200, {
            "generated_at": now,
            "node": self.source.node,
            "totals": view.totals(counts, len(waiting)),
            "states": dict(sorted(counts.items())),
            "health": {
                "healthy": health.healthy,
                "paused": health.paused,
                "credits_out": health.credits_out,
                "api_reachable": health.api_reachable,
                "credits": health.credits,
                "observers": [{"folder": o.folder, "kind": o.kind, "state": o.state,
                               "alive": o.alive} for o in health.observers],
            },
            "folders": [str(f) for f in self.source.watched_folders()],
            "retry_enabled": self.retry_enabled,
        })

    def files(self, query_text: str) -> Response:
        query = parse_qs(query_text, max_num_fields=10)
        try:
            days = _number(query, "days", DEFAULT_DAYS, 0, MAX_DAYS)
            limit = int(_number(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT))
        except ValueError as e:
            return error(400, str(e))
        wanted = _text(query, "display")
        if wanted and wanted not in {str(d) for d in view.Display}:
            return error(400, f"display: one of {', '.join(view.Display)}")
        now = self._clock()
        folders = list(self.source.watched_folders())
        chosen, total = view.select(
            self.catalog.records(), self.source.waiting(), now=now, query=_text(query, "q"),
            display=wanted, since=now - days * 86400, limit=limit)
        uploads = self.source.uploads()
        node = self.source.node
        rows = [view.file_row(r, progress=uploads.get(r.path), node=node, folders=folders,
                              now=now) for r in chosen]
        return json_response(200, {"generated_at": now, "node": node, "total": total,
                                   "truncated": total > len(rows), "files": rows})

    def retry(self, request: Request) -> Response:
        if self._token is None:
            return error(403, "the page is read-only: the admin has not set "
                              "[daemon] web_token_file")
        if not self._authorized(request.headers.get("authorization", "")):
            self._log_refusal(request.client)
            return error(401, "a valid token is needed to retry",
                         {"WWW-Authenticate": 'Bearer realm="runwatchd"'})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return error(415, "send the body as application/json")
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return error(400, "the body is not JSON")
        path = data.get("path") if isinstance(data, dict) else None
        if not isinstance(path, str) or not path:
            return error(400, 'expected {"path": "..."}')
        outcome = self.source.request_retry(path)
        self.catalog.invalidate()
        if outcome is RetryOutcome.RETRYING:
            log.info("web: retry of %s requested from %s", path, request.client)
        record = self.store.get(path)
        return json_response(_RETRY_STATUS[outcome], {
            "path": path, "outcome": str(outcome), "state": record.state if record else None})

    def _log_refusal(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._refused += 1
            if now < self._next_refusal_log:
                return
            count, self._refused = self._refused, 0
            self._next_refusal_log = now + REFUSAL_LOG_EVERY
        log.warning("web: %d retry request(s) refused for a missing or wrong token (the last "
                    "from %s)", count, client)

    def _authorized(self, header: str) -> bool:
        assert self._token is not None
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant time: how much of a guess matched must not show in how long the reply takes.
        return hmac.compare_digest(given.strip().encode(), self._token)

    # -- files -----------------------------------------------------------------------------

    def send_file(self, fid: str, output: int | None, *, thumbnail: bool,
                  range_header: str | None = None) -> Response:
        record = self.catalog.find(fid)
        if record is None:
            return error(404, "no such file")
        if output is None:
            path = self.source.media_path(record.path)
            roots: list[Path] = list(self.source.watched_folders())
        else:
            if output >= len(record.outputs):
                return error(404, "no such output")
            path = self.source.output_path(record.path, record.outputs[output])
            roots = [*self.source.watched_folders(),
                     *([Path(record.output_dir)] if record.output_dir else [])]
        reply = media.open_file(path, roots, thumbnail=thumbnail) if path is not None else None
        if reply is None:
            return error(404, "not available")
        headers = {"Content-Disposition": media.disposition(reply), "Accept-Ranges": "bytes",
                   "Cache-Control": "private, max-age=60"}
        if not thumbnail and not media.apply_range(reply, range_header):
            reply.handle.close()
            return error(416, "range not satisfiable", {"Content-Range": f"bytes */{reply.size}"})
        return Response(206 if reply.partial else 200, b"", reply.content_type,
                        {**headers, **reply.headers}, file=reply)


def _text(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[0][:200] if values else ""


def _number(query: dict[str, list[str]], key: str, default: float, low: float,
            high: float) -> float:
    text = _text(query, key)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{key}: must be {low:g} to {high:g}")
    return value
