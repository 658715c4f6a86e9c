"""The emulator's HTTP layer: request handling, routing, auth, and fault application.

Each request goes through the same gate a real deployment has: faults first (they stand for the
load balancer and the network), then the API's own checks (bearer key, X-Runway-Version), then
the handler. Storage bodies are never read whole: the storage route hands the socket to
storage.Storage, and every early answer drains what the client still sends before closing, so
a client that sends its whole body before reading (httpx does) sees our reply, not a reset.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from runwatchd.runway.api import API_VERSION

from .contract import EmulatorApp
from .faults import Decision
from .form import BodyReader, UploadRejected
from .listener import EmulatorServer
from .routes import ROUTES, Reply, Route, json_reply, label_of, match_route, s3_code
from .state import ApiError

log = logging.getLogger(__name__)

MAX_JSON_BODY = 1024 * 1024
BAD_JSON = b'{"id": "3f2b0c1e-0000-4000-8000-0000000000", "status": '


class _Drop(Exception):
    """Close the connection without answering (injected drop, or the client went away)."""


class Handler(BaseHTTPRequestHandler):
    """One connection; requests are served one after another (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "RunwayEmulator/1.0"
    timeout = 120  # idle keep-alive connections end; a stuck client cannot hold a thread forever
    # Headers and body leave in one write: two small writes on a keep-alive connection meet
    # Nagle's algorithm and delayed ACKs, and each reply would stall ~40 ms.
    wbufsize = 64 * 1024
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        # StreamRequestHandler.finish lets a BrokenPipeError from closing the buffered wfile
        # escape (the client vanished mid-reply) and then never closes rfile, whose reference
        # keeps the socket open until garbage collection (a ResourceWarning in tests).
        try:
            super().finish()
        except OSError:
            self.rfile.close()

    def handle_expect_100(self) -> bool:
        # The 100 Continue would sit in our write buffer; curl would wait a second for it.
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (stdlib signature)
        log.debug("emulator %s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802  (stdlib naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def app(self) -> EmulatorApp:
        return self.server.app

    def base_url(self) -> str:
        """The URL clients reached us by (Host header), so links work through any address."""
        host = self.headers.get("Host", "")
        if re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            return f"http://{host}"
        return self.app.url

    def content_length(self) -> int | None:
        """The declared body length; None when it cannot be known (chunked or invalid)."""
        if self.headers.get("Transfer-Encoding"):
            return None
        try:
            value = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        return value if value >= 0 else None

    def read_json(self) -> Any:
        """The JSON body of an API call ({} when empty)."""
        length = self.content_length()
        if length is None:
            raise ApiError(411, "Content-Length is required")
        if length > MAX_JSON_BODY:
            raise ApiError(413, "Request body too large")
        raw = self.body.read_all()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "Invalid JSON body") from e

    def _finish_body(self) -> None:
        """Read what is left of the body after replying: the client (httpx sends the whole body
        before it reads) then sees our reply rather than a reset, and keep-alive stays in sync."""
        if self.content_length() is not None:
            self.body.drain()

    def send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        if reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)
        self.wfile.flush()

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        on_bytes: Callable[[int], None] = lambda n: None  # noqa: E731
        if self.path.startswith("/_storage/"):
            on_bytes = lambda n: self.app.counters.add("bytes_received", n)  # noqa: E731
        self.body = BodyReader(self.rfile, self.content_length() or 0, on_bytes)
        path = urlsplit(self.path).path
        route, match = match_route(method, path)
        label = label_of(method, path, route, match)
        if path.startswith("/v1/"):
            self.app.counters.add("api_calls_total")
        counted = path.startswith("/_emulator/")  # introspection must not disturb what it observes
        try:
            reply, decision = self._serve(path, route, match)
            if decision.after == "drop_after":
                raise _Drop()
            if decision.after == "slow":
                self.server.stopping.wait(decision.slow_seconds)
            if decision.after == "bad_json" and reply.content_type == "application/json":
                reply = Reply(200, BAD_JSON)
            if self.content_length() is None or self.body.remaining > MAX_JSON_BODY:
                self.close_connection = True  # cannot resync, or not worth draining for keep-alive
            if not counted:  # counted before sending: a client that asks for stats next sees it
                self.app.counters.request(label, reply.status)
                counted = True
            self.send(reply)
            self._finish_body()
        except (_Drop, OSError):  # OSError: the client went away (ConnectionError, timeouts)
            self.close_connection = True
            if not counted:
                self.app.counters.request(label, "dropped")

    def _serve(
        self, path: str, route: Route | None, match: re.Match[str] | None
    ) -> tuple[Reply, Decision]:
        if route is None or match is None:
            if any(r.pattern.fullmatch(path) for r in ROUTES):
                return json_reply(405, {"error": "Method not allowed"}), Decision()
            return json_reply(404, {"error": "Not found"}), Decision()
        decision = Decision()
        if route.categories:
            decision = self.app.faults.decide(route.categories, json_reply=route.json_reply)
            if decision.delay:
                self.server.stopping.wait(decision.delay)
            injected = self._injected(route, decision)
            if injected is not None:
                return injected, Decision()
        try:
            if path.startswith("/v1/"):
                self._check_key_and_version()
            reply = getattr(self, "h_" + route.handler)(*match.groups())
        except ApiError as e:
            reply = json_reply(e.status, e.body())
            if not route.json_reply:
                reply = self._error_reply(route, e.status, e.error)
        except UploadRejected as e:
            log.debug("emulator storage refused an upload: %s", e)
            self.app.counters.add("uploads_rejected")
            reply = Reply(e.status, e.body(), "application/xml")
        return reply, decision

    def _injected(self, route: Route, decision: Decision) -> Reply | None:
        """The reply for a fault decided in front of the handler, if any."""
        if decision.kind == "drop":
            if route.handler == "upload":
                self.body.drain(max(1, self.body.remaining // 2))  # the network dies mid-body
            else:
                self.body.drain()
            raise _Drop()
        if decision.kind == "rate_limit":
            retry = f"{decision.retry_after:g}"
            return self._error_reply(
                route, 429, "Too many requests. Please slow down.", {"Retry-After": retry}
            )
        if decision.kind == "error":
            return self._error_reply(
                route, decision.status, "The service is temporarily unavailable."
            )
        return None

    def _error_reply(
        self, route: Route, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Reply:
        if not route.json_reply:
            return Reply(
                status,
                UploadRejected(status, s3_code(status), message).body(),
                "application/xml",
                headers,
            )
        return Reply(status, json.dumps({"error": message}).encode(), headers=headers)

    def _check_key_and_version(self) -> None:
        auth = self.headers.get("Authorization", "")
        expected = f"Bearer {self.app.api_secret}"
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            self.app.counters.add("auth_failures")
            raise ApiError(401, "Invalid API key. Check your API secret.")
        if self.headers.get("X-Runway-Version") != API_VERSION:
            self.app.counters.add("version_failures")
            raise ApiError(400, f"Missing or invalid X-Runway-Version header (use {API_VERSION}).")

    # -- handlers ------------------------------------------------------------------------------

    def h_organization(self) -> Reply:
        return json_reply(200, self.app.organization())

    def h_create_upload(self) -> Reply:
        body = self.read_json()
        return json_reply(200, self.app.create_upload(body, self.base_url()))

    def h_generate(self, endpoint: str) -> Reply:
        body = self.read_json()
        return json_reply(200, self.app.generate(endpoint, body))

    def h_get_task(self, task_id: str) -> Reply:
        view = self.app.tasks.view(task_id, self.base_url())
        if view is None:
            raise ApiError(404, "Task not found")
        return json_reply(200, view)

    def h_delete_task(self, task_id: str) -> Reply:
        self.app.cancel(task_id)
        return Reply(204)

    def h_upload(self, slot_id: str) -> Reply:
        storage = self.app.storage
        boundary = storage.precheck(self.content_length(), self.headers.get("Content-Type"))
        slot = storage.claim(slot_id)
        obj = storage.receive(slot, boundary, self.body)
        self.app.counters.add("uploads_completed")
        self.app.counters.add("bytes_stored", obj.size)
        return Reply(204)

    def h_output(self, task_id: str, name: str) -> Reply:
        found = self.app.tasks.output(task_id, name)
        if found is None:
            raise ApiError(404, "Not found")
        self.app.counters.add("outputs_served")
        content_type, data = found
        return Reply(200, data, content_type)

    def h_em_stats(self) -> Reply:
        return json_reply(200, self.app.stats())

    def h_em_objects(self) -> Reply:
        return json_reply(200, self.app.objects())

    def h_em_faults(self) -> Reply:
        return json_reply(200, self.app.faults.current())

    def h_em_set_faults(self) -> Reply:
        body = self.read_json()
        if not isinstance(body, dict):
            raise ApiError(400, "Expected a JSON object of fault settings")
        try:
            self.app.faults.update(**body)
        except (ValueError, TypeError) as e:
            raise ApiError(400, str(e)) from e
        return json_reply(200, self.app.faults.current())

    def h_em_reset(self) -> Reply:
        body = self.read_json()
        self.app.reset(full=bool(isinstance(body, dict) and body.get("full")))
        return json_reply(200, {"reset": True})
