"""Tests for the status page's defences: headers, Host checks, hostile URLs, slow clients."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for
from web_helpers import Site, start_site

from runwatchd.service.web.server import CSP, allowed_hosts


def raw(site: Site, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request` as bytes on a fresh connection; everything the server sent back."""
    host, port = site.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def get(site: Site, target: str, host: str | None = None) -> bytes:
    host_line = b"" if host == "" else b"Host: " + (host or site.base[7:]).encode() + b"\r\n"
    return raw(site, b"GET " + target.encode() + b" HTTP/1.1\r\n" + host_line
               + b"Connection: close\r\n\r\n")


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/summary", "/api/files",
                                  "/api/nothing", "/static/missing.js"])
def test_every_reply_carries_the_security_headers_and_no_cookie(site: Site, path: str) -> None:
    """Pages, JSON and errors alike: strict CSP, nosniff, no referrer, no frames, no cookie."""
    reply = site.http.get(path)
    assert (CSP, "nosniff", "no-referrer", "DENY", None) == (
        reply.headers["content-security-policy"], reply.headers["x-content-type-options"],
        reply.headers["referrer-policy"], reply.headers["x-frame-options"],
        reply.headers.get("set-cookie"))


def test_the_standard_librarys_own_errors_carry_them_too(site: Site) -> None:
    """A request the stdlib refuses itself (too many headers) still gets the CSP header."""
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(120))
    reply = raw(site, b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431")
    assert b"Content-Security-Policy: default-src 'none'" in reply


def test_loopback_server_refuses_foreign_host_headers(site: Site) -> None:
    """Bound to 127.0.0.1, only its own address or localhost are answered (DNS rebinding)."""
    port = site.base.rsplit(":", 1)[1]
    assert get(site, "/api/summary", f"evil.example:{port}").startswith(b"HTTP/1.1 421")
    assert get(site, "/api/summary", "127.0.0.1").startswith(b"HTTP/1.1 421")
    assert get(site, "/api/summary", "").startswith(b"HTTP/1.1 421")
    assert get(site, "/api/summary", f"localhost:{port}").startswith(b"HTTP/1.1 200")
    assert get(site, "/api/summary", f"LOCALHOST:{port}").startswith(b"HTTP/1.1 200")


def test_allowed_hosts_only_restrict_loopback_binds() -> None:
    """A LAN or wildcard bind takes any Host (a reverse proxy names it); loopback is strict."""
    assert (None, None) == (allowed_hosts("0.0.0.0", 8787), allowed_hosts("192.0.2.7", 8787))
    assert {"localhost:8787", "127.0.0.1:8787", "[::1]:8787"} == set(
        allowed_hosts("127.0.0.1", 8787) or ())
    assert "[::1]" in (allowed_hosts("::1", 80) or ())


@pytest.mark.parametrize("target", [
    "/static/../server.py", "/static/%2e%2e/server.py", "/../../../../etc/passwd",
    "/api/files/../../../../etc/passwd", "/api/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd/thumb",
    "//etc/passwd", "/static/app.js/../../__init__.py", "/api/files/ZZZZ/thumb",
])
def test_hostile_urls_reach_no_file(site: Site, target: str) -> None:
    """Traversal in any spelling is a 404: no route takes a path from the URL."""
    reply = get(site, target)
    assert reply.startswith(b"HTTP/1.1 404")
    assert b"root:" not in reply and b"import" not in reply


def test_idle_clients_are_dropped(tmp_path: Path) -> None:
    """A client that connects and sends nothing is disconnected after the timeout."""
    s, server = start_site(tmp_path, timeout=0.3)
    try:
        host, port = s.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            start = time.monotonic()
            sock.sendall(b"GET /api/summary HTTP/1.1\r\n")  # and never the rest
            assert b"" == sock.recv(1024)
            assert time.monotonic() - start < 3
    finally:
        s.http.close()
        server.stop()
        s.store.close()


@pytest.fixture
def small_site(tmp_path: Path) -> Iterator[Site]:
    """A page that serves two connections at once."""
    s, server = start_site(tmp_path, max_connections=2, timeout=5)
    yield s
    s.http.close()
    server.stop()
    s.store.close()


def test_connections_beyond_the_cap_are_dropped(small_site: Site) -> None:
    """Past max_connections a new connection is closed at once; a freed slot serves again."""
    host, port = small_site.base.removeprefix("http://").split(":")
    request = f"GET /api/summary HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
    try:
        for sock in held:  # answered and kept alive: each holds a slot
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with socket.create_connection((host, int(port)), timeout=5) as extra:
            extra.sendall(request)
            assert b"" == extra.recv(1024)
    finally:
        for sock in held:
            sock.close()
    assert wait_for(lambda: get(small_site, "/api/summary").startswith(b"HTTP/1.1 200"), 5)
