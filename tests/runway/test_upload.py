"""Tests for runwatchd.runway.upload over a real socket: the streamed multipart body, hashes, memory."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import PeakRss, multipart_parts

from runwatchd import errors
from runwatchd.runway.client import RunwayClient

SECRET = "key_s3cr3t0123456789abcdef"
URI = "runway://upload/abc123"
FIELDS = {"key": "uploads/abc123/clip.mp4", "policy": "eyJleHAiOiIyMDI2In0=", "x-amz-signature": "f00"}


class _Server:
    """A tiny Runway stand-in on 127.0.0.1: hands out slots and takes storage POSTs raw."""

    def __init__(self, keep_body: bool) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self
        self.keep_body = keep_body
        self.storage: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                if self.path == "/v1/uploads":
                    self.rfile.read(int(self.headers["Content-Length"]))
                    body = json.dumps({
                        "uploadUrl": f"{server.url}/storage", "fields": FIELDS,
                        "runwayUri": URI}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length", "-1"))
                digest, kept, left = hashlib.sha256(), [], length
                while left > 0:
                    chunk = self.rfile.read(min(left, 256 * 1024))
                    if not chunk:
                        break
                    left -= len(chunk)
                    digest.update(chunk)
                    if server.keep_body:
                        kept.append(chunk)
                server.storage.append({"headers": dict(self.headers), "length": length,
                                       "received": length - left, "body": b"".join(kept)})
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Any:
    srv = _Server(keep_body=getattr(request, "param", True))
    yield srv
    srv.close()


def test_real_server_multipart(server: _Server, clip: Path) -> None:
    """Over a socket: Content-Length (no chunking), no key, fields verbatim first, file last,
    and the sha256 in the result is the sha256 of the bytes the server got."""
    with RunwayClient(SECRET, server.url) as c:
        result = c.upload(clip)
    got = server.storage[0]
    parts = multipart_parts(got["headers"]["Content-Type"], got["body"])
    expected = [(f'Content-Disposition: form-data; name="{k}"'.encode(), v.encode())
                for k, v in FIELDS.items()]
    expected.append((b'Content-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
                     b"Content-Type: video/mp4", clip.read_bytes()))
    assert (expected, None, None, len(got["body"])) == (
        parts, got["headers"].get("Transfer-Encoding"), got["headers"].get("Authorization"),
        got["length"])
    assert hashlib.sha256(parts[-1][1]).hexdigest() == result.sha256


def test_real_server_concurrent_uploads(server: _Server, tmp_path: Path) -> None:
    """One client serves several threads at once; every upload gets its own correct hash."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i in range(8):
        paths.append(tmp_path / f"s{i}.png")
        paths[-1].write_bytes(os.urandom(200_000 + i))
    with RunwayClient(SECRET, server.url) as c, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(c.upload, paths))
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths] == [
        r.sha256 for r in results]
    assert sorted(200_000 + i for i in range(8)) == sorted(
        len(multipart_parts(g["headers"]["Content-Type"], g["body"])[-1][1]) for g in server.storage)


def test_real_server_file_truncated(server: _Server, clip: Path) -> None:
    """Over a socket, a file cut short mid-stream (httpx then refuses the short body) is
    FileChanged, not a retried network error."""
    with RunwayClient(SECRET, server.url) as c, pytest.raises(errors.FileChanged) as info:
        c.upload(clip, progress=lambda n: os.truncate(clip, 1000))
    assert "size 5000 -> 1000 bytes" in str(info.value)


def test_real_server_big_file_truncated_between_chunks(server: _Server, tmp_path: Path) -> None:
    """A multi-chunk file truncated after its first chunk went out is FileChanged naming it."""
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    cut = []

    def truncate_once(n: int) -> None:
        if not cut:
            cut.append(n)
            os.truncate(big, 1024 * 1024)

    with RunwayClient(SECRET, server.url) as c, pytest.raises(errors.FileChanged) as info:
        c.upload(big, progress=truncate_once)
    assert "big.mp4" in str(info.value)


@pytest.mark.parametrize("server", [False], indirect=True)
def test_real_server_memory_stays_flat(server: _Server, tmp_path: Path) -> None:
    """Streaming a 100 MiB file raises peak RSS by far less than the file (< 30 MB)."""
    size = 100 * 1024 * 1024
    path = tmp_path / "big.mov"
    with open(path, "wb") as f:
        f.truncate(size)
    with PeakRss() as rss, RunwayClient(SECRET, server.url) as c:
        result = c.upload(path)
    zeros = hashlib.sha256()
    block = bytes(1024 * 1024)
    for _ in range(100):
        zeros.update(block)
    got = server.storage[0]
    assert (zeros.hexdigest(), got["length"], True) == (
        result.sha256, got["received"], got["length"] > size)
    assert rss.growth < 30 * 1024 * 1024, f"RSS grew by {rss.growth / 2**20:.1f} MiB"
