"""The status page's HTTP server: the standard library's ThreadingHTTPServer, hardened.

No web framework: the page needs a handful of routes and JSON, and a dependency that a daemon
running for months must keep patched buys nothing here (prometheus_client's own endpoint is the
standard library's wsgiref too). What a framework would give, done by hand and tested:

- every reply carries a strict Content-Security-Policy (scripts and styles only from this
  server, no inline code, no frames, no forms, no other hosts), nosniff, no referrer, and no
  cookie ever (the token lives in the page's sessionStorage and travels as a bearer header,
  so another site cannot make a browser send it: no CSRF);
- bound to loopback, it answers only requests whose Host is its own address or localhost, so a
  web page elsewhere cannot rebind a DNS name to 127.0.0.1 and read it;
- bodies are capped, idle or slow connections are dropped after TIMEOUT seconds, and at most
  MAX_CONNECTIONS are served at once (systemd's TasksMax counts our threads);
- static assets are a fixed list shipped in the package; nothing is read from a path taken
  from a request.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from runwatchd.service.metrics import parse_address
from runwatchd.service.web.api import MAX_BODY, Request, Response, WebApi, error

log = logging.getLogger(__name__)

TIMEOUT = 10.0
MAX_CONNECTIONS = 32
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
    "/static/icon.svg": ("icon.svg", "image/svg+xml"),
}
_CHUNK = 256 * 1024


def load_assets() -> dict[str, tuple[bytes, str]]:
    """URL path -> (bytes, content type) of the page's files, read once from the package."""
    static = resources.files("runwatchd.service.web") / "static"
    return {url: ((static / name).read_bytes(), kind) for url, (name, kind) in _ASSETS.items()}


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host headers a loopback-bound server answers; None (any) when bound elsewhere, where
    the admin chose to serve the LAN (and retry still needs the token)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    names = {"localhost", "127.0.0.1", "[::1]", f"[{host}]" if ":" in host else host}
    return frozenset(f"{name}:{port}" for name in names) | (
        frozenset(names) if port == 80 else frozenset())


class WebServer:
    """The page and its API on one address; start() binds and serves in a thread."""

    def __init__(self, address: str, api: WebApi, *, timeout: float = TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.address = address
        self.api = api
        self.timeout = timeout
        self.max_connections = max_connections
        self.assets = load_assets()
        self.hosts: frozenset[str] | None = None
        self.url: str | None = None  # http://host:port once started
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> tuple[str, int]:
        """Bind (OSError if the address is taken) and serve; returns the bound (host, port)."""
        host, port = parse_address(self.address)
        httpd = _HTTPServer((host, port), self)
        bound_host, bound_port = str(httpd.server_address[0]), int(httpd.server_address[1])
        self.hosts = allowed_hosts(host, bound_port)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="runwatchd-web", daemon=True)
        self._thread.start()
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        log.info("status page on %s/ (%s)", self.url,
                 "retry with the token" if self.api.retry_enabled else "read-only")
        return bound_host, bound_port

    def stop(self) -> None:
        """Stop serving and join the server's thread; harmless if it never started."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def respond(self, request: Request) -> Response:
        """The reply to one request (everything but the socket)."""
        if self.hosts is not None and request.headers.get("host", "").lower() not in self.hosts:
            return error(421, "this server answers only to its own address")
        asset = self.assets.get(request.path)
        if asset is not None:
            if request.method not in ("GET", "HEAD"):
                return error(405, "GET only", {"Allow": "GET, HEAD"})
            body, kind = asset
            return Response(200, body, kind, {"Cache-Control": "no-cache"})
        try:
            reply = self.api.handle(request)
        except Exception:  # a bug must cost one request, not the server thread
            log.exception("web: %s %s failed", request.method, request.path)
            return error(500, "internal error (see the daemon's log)")
        return reply if reply is not None else error(404, "not found")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], web: WebServer) -> None:
        self.web = web
        self.slots = threading.BoundedSemaphore(web.max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # a flood of connections: drop the newest
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    csp = CSP  # this reply's policy (end_headers sends it)

    def setup(self) -> None:
        super().setup()
        # Per socket operation: a client that stalls (slowloris) is dropped.
        self.connection.settimeout(self.server.web.timeout)

    def version_string(self) -> str:
        return "runwatchd"  # not the Python version: nothing for a scanner to match

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_POST(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        body, problem = self._read_body()
        if problem is not None:
            self.close_connection = True
            self._send(problem, head=head)
            return
        url = urlsplit(self.path)
        request = Request(
            method="GET" if head else self.command, path=url.path, query=url.query,
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            client=str(self.client_address[0]))
        self._send(self.server.web.respond(request), head=head)

    def _read_body(self) -> tuple[bytes, Response | None]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"", error(411, "send a Content-Length, not a chunked body")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b"", (error(411, "a Content-Length is needed") if self.command == "POST"
                         else None)
        if not length_text.isdigit():
            return b"", error(400, "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            return b"", error(413, f"the body may be {MAX_BODY} bytes at most")
        return self.rfile.read(length), None

    def _send(self, response: Response, *, head: bool) -> None:
        reply = response.file
        length = reply.length if reply is not None else len(response.body)
        # Media plays in a sandbox: an SVG or HTML planted as an output runs no script.
        self.csp = CSP if reply is None else "default-src 'none'; sandbox"
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(length))
            if response.content_type.startswith("application/json"):
                self.send_header("Cache-Control", "no-store")
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if head:
                return
            if reply is None:
                self.wfile.write(response.body)
                return
            reply.handle.seek(reply.start)
            left = reply.length
            while left > 0:
                chunk = reply.handle.read(min(_CHUNK, left))
                if not chunk:
                    break  # the file shrank meanwhile: the client sees a short body
                self.wfile.write(chunk)
                left -= len(chunk)
        finally:
            if reply is not None:
                reply.handle.close()

    def end_headers(self) -> None:
        # Here, so the standard library's own error replies (a bad request line) carry them too.
        self.send_header("Content-Security-Policy", self.csp)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("web: %s %s", self.client_address[0], format % args)
