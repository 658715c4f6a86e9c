"""Tests for runwatchd.runway.download: outputs fetched atomically, bounded in every direction."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from runway_mocks import BASE, SECRET

from runwatchd import errors, fsutil
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.download import DISK_RESERVE, MAX_REDIRECTS, Downloader, MiB
from runwatchd.runway.http_errors import ErrorMapper
from runwatchd.runway.retries import RetryPolicy

CDN = "https://cdn.test"


@pytest.fixture
def downloader() -> Iterator[Callable[..., Downloader]]:
    """Build Downloaders over real httpx clients (respx intercepts them), with injectables."""
    clients: list[httpx.Client] = []

    def make(**kw: Any) -> Downloader:
        api = httpx.Client(base_url=BASE, headers={"Authorization": f"Bearer {SECRET}"})
        storage = httpx.Client()
        clients.extend((api, storage))
        return Downloader(api, storage, httpx.URL(BASE), ErrorMapper(SECRET), **kw)

    yield make
    for c in clients:
        c.close()


def _leftovers(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_download_foreign_host_without_key(respx_mock: respx.MockRouter, tmp_path: Path,
                                           make_client: Callable[..., RunwayClient]) -> None:
    """Outputs on another host are fetched without the key, written atomically."""
    route = respx_mock.get(f"{CDN}/out.mp4").mock(side_effect=[
        httpx.Response(503), httpx.Response(200, content=b"v" * 3000)])
    dest = tmp_path / "renders" / "shot.mp4"
    n = make_client().download(f"{CDN}/out.mp4?sig=abc", dest)
    assert (3000, b"v" * 3000, None, ["shot.mp4"]) == (
        n, dest.read_bytes(), route.calls.last.request.headers.get("Authorization"),
        os.listdir(dest.parent))


def test_download_same_origin_with_key(respx_mock: respx.MockRouter, tmp_path: Path,
                                       make_client: Callable[..., RunwayClient]) -> None:
    """Outputs served by the API host itself get the key."""
    route = respx_mock.get(f"{BASE}/outputs/o.png").mock(
        return_value=httpx.Response(200, content=b"png"))
    make_client().download(f"{BASE}/outputs/o.png", tmp_path / "o.png")
    assert f"Bearer {SECRET}" == route.calls.last.request.headers["Authorization"]


def test_download_expired_url(respx_mock: respx.MockRouter, tmp_path: Path,
                              make_client: Callable[..., RunwayClient]) -> None:
    """A 403 on an output URL is InputRejected with a hint, and leaves no file or temp."""
    respx_mock.get(f"{CDN}/out.mp4").mock(return_value=httpx.Response(403))
    with pytest.raises(errors.InputRejected) as info:
        make_client().download(f"{CDN}/out.mp4?X-Amz-Signature=zzz", tmp_path / "o.mp4")
    assert ([], True, False) == (os.listdir(tmp_path), "fetch the task again" in str(info.value),
                                 "zzz" in str(info.value))


def test_download_dropped_midway_leaves_no_temp(respx_mock: respx.MockRouter, tmp_path: Path,
                                                make_client: Callable[..., RunwayClient]) -> None:
    """A body cut short is retried; the failed attempt's temp file is removed."""
    calls = 0

    def body() -> Any:
        yield b"x" * 100
        raise httpx.ReadError("reset")

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=body() if calls == 1 else b"y" * 10)

    respx_mock.get(f"{CDN}/a.mp4").mock(side_effect=answer)
    n = make_client().download(f"{CDN}/a.mp4", tmp_path / "a.mp4")
    assert (10, ["a.mp4"], 2) == (n, os.listdir(tmp_path), calls)
    assert not any(fsutil.TEMP_MARK in name for name in os.listdir(tmp_path))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://cdn.test/a.mp4", "not a url",
                                 "https://", "data:video/mp4;base64,AAAA"])
def test_urls_that_can_never_work_are_refused_without_a_request(
        respx_mock: respx.MockRouter, tmp_path: Path, url: str,
        make_client: Callable[..., RunwayClient], sleeps: list[float]) -> None:
    """A non-http(s) output URL is refused at once: no request, no retry, no file."""
    with pytest.raises(errors.DownloadRefused):
        make_client().download(url, tmp_path / "o.mp4")
    assert ([], 0, []) == (sleeps, len(respx_mock.calls), _leftovers(tmp_path))


def test_a_redirect_loop_is_refused_not_retried(respx_mock: respx.MockRouter, tmp_path: Path,
                                                make_client: Callable[..., RunwayClient]) -> None:
    """A redirect loop ends after MAX_REDIRECTS hops with DownloadRefused, once."""
    respx_mock.get(f"{CDN}/loop").mock(
        return_value=httpx.Response(302, headers={"Location": f"{CDN}/loop"}))
    with pytest.raises(errors.DownloadRefused, match="redirects"):
        make_client().download(f"{CDN}/loop", tmp_path / "o.mp4")
    assert (MAX_REDIRECTS + 1, []) == (len(respx_mock.calls), _leftovers(tmp_path))


def test_a_redirect_to_plain_http_is_refused(respx_mock: respx.MockRouter, tmp_path: Path,
                                             make_client: Callable[..., RunwayClient]) -> None:
    """An https output redirected to plain http elsewhere is refused before that hop."""
    respx_mock.get(f"{CDN}/a.mp4").mock(
        return_value=httpx.Response(301, headers={"Location": "http://evil.test/a.mp4"}))
    evil = respx_mock.get("http://evil.test/a.mp4").mock(return_value=httpx.Response(200))
    with pytest.raises(errors.DownloadRefused, match="non-https"):
        make_client().download(f"{CDN}/a.mp4", tmp_path / "o.mp4")
    assert 0 == evil.call_count


def test_a_redirect_from_the_api_to_storage_drops_the_key(
        respx_mock: respx.MockRouter, tmp_path: Path,
        make_client: Callable[..., RunwayClient]) -> None:
    """The API may redirect an output to a CDN: that hop goes without the Authorization header."""
    respx_mock.get(f"{BASE}/outputs/o.png").mock(
        return_value=httpx.Response(302, headers={"Location": f"{CDN}/o.png"}))
    cdn = respx_mock.get(f"{CDN}/o.png").mock(return_value=httpx.Response(200, content=b"png"))
    make_client().download(f"{BASE}/outputs/o.png", tmp_path / "o.png")
    assert (None, b"png") == (cdn.calls.last.request.headers.get("Authorization"),
                              (tmp_path / "o.png").read_bytes())


def test_a_declared_size_over_the_cap_is_refused_before_reading(
        respx_mock: respx.MockRouter, tmp_path: Path,
        make_client: Callable[..., RunwayClient]) -> None:
    """Content-Length over the cap: refused, nothing written."""
    respx_mock.get(f"{CDN}/big.mp4").mock(return_value=httpx.Response(
        200, headers={"Content-Length": str(3 * MiB)}, content=b"x" * (3 * MiB)))
    with pytest.raises(errors.DownloadRefused, match="over the 2 MiB limit"):
        make_client(max_download_bytes=2 * MiB).download(f"{CDN}/big.mp4", tmp_path / "o.mp4")
    assert [] == _leftovers(tmp_path)


def test_an_endless_body_stops_at_the_cap(respx_mock: respx.MockRouter, tmp_path: Path,
                                          make_client: Callable[..., RunwayClient]) -> None:
    """A body with no length that never ends is cut at the cap; its temp file is removed."""
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        while True:
            sent += 64 * 1024
            yield b"z" * (64 * 1024)

    respx_mock.get(f"{CDN}/endless").mock(return_value=httpx.Response(200, content=endless()))
    with pytest.raises(errors.DownloadRefused, match="more than 1 MiB"):
        make_client(max_download_bytes=MiB).download(f"{CDN}/endless", tmp_path / "o.mp4")
    assert [] == _leftovers(tmp_path)
    assert sent < 4 * MiB


def test_a_trickling_server_trips_the_attempt_deadline(
        respx_mock: respx.MockRouter, tmp_path: Path,
        downloader: Callable[..., Downloader]) -> None:
    """Bytes arriving slower than ~2 Mbit/s on average end the attempt (a retryable error)."""
    now = [0.0]

    def trickle() -> Iterator[bytes]:
        for _ in range(100):
            now[0] += 5.0  # one small chunk every five seconds
            yield b"t"

    respx_mock.get(f"{CDN}/slow").mock(return_value=httpx.Response(200, content=trickle()))
    d = downloader(clock=lambda: now[0])
    with pytest.raises(errors.NetworkError, match="too slow"):
        d.fetch(d.check_url(f"{CDN}/slow"), tmp_path / "o.mp4")
    assert [] == _leftovers(tmp_path)
    assert now[0] <= 70.0


def test_too_little_free_space_waits_without_a_request(
        respx_mock: respx.MockRouter, tmp_path: Path,
        downloader: Callable[..., Downloader]) -> None:
    """Less free space than the reserve: DiskFull before any request is sent."""
    route = respx_mock.get(f"{CDN}/a.mp4").mock(return_value=httpx.Response(200, content=b"a"))
    d = downloader(free_bytes=lambda _dir: DISK_RESERVE - 1)
    with pytest.raises(errors.DiskFull, match="not enough free space"):
        d.fetch(d.check_url(f"{CDN}/a.mp4"), tmp_path / "o.mp4")
    assert 0 == route.call_count


def test_a_declared_size_larger_than_the_free_space_is_not_started(
        respx_mock: respx.MockRouter, tmp_path: Path,
        downloader: Callable[..., Downloader]) -> None:
    """Content-Length larger than the free space (less the reserve): DiskFull, nothing written."""
    respx_mock.get(f"{CDN}/a.mp4").mock(return_value=httpx.Response(
        200, headers={"Content-Length": str(10 * MiB)}, content=b"a" * (10 * MiB)))
    d = downloader(free_bytes=lambda _dir: DISK_RESERVE + 5 * MiB)
    with pytest.raises(errors.DiskFull):
        d.fetch(d.check_url(f"{CDN}/a.mp4"), tmp_path / "o.mp4")
    assert [] == _leftovers(tmp_path)


def test_a_download_that_is_retried_keeps_its_deadline_per_attempt(
        respx_mock: respx.MockRouter, tmp_path: Path,
        make_client: Callable[..., RunwayClient]) -> None:
    """A too-slow attempt is retried by the client's policy like any network error."""
    respx_mock.get(f"{CDN}/a.mp4").mock(side_effect=[
        httpx.ReadTimeout("slow"), httpx.Response(200, content=b"ok")])
    client = make_client(retry=RetryPolicy(max_attempts=2, initial_delay=0.0, max_delay=0.0))
    assert 2 == client.download(f"{CDN}/a.mp4", tmp_path / "o.mp4")


def test_download_output_names_the_file_after_its_content_type(
        respx_mock: respx.MockRouter, tmp_path: Path,
        make_client: Callable[..., RunwayClient]) -> None:
    """download_output asks for the name once the headers (Content-Type) are in, and says it."""
    respx_mock.get(f"{CDN}/out").mock(return_value=httpx.Response(
        200, headers={"Content-Type": "video/quicktime"}, content=b"mov"))
    seen: list[str | None] = []

    def choose(content_type: str | None) -> Path:
        seen.append(content_type)
        return tmp_path / "r" / "shot.jpg.mov"

    got = make_client().download_output(f"{CDN}/out", tmp_path / "r", choose)
    assert (["video/quicktime"], tmp_path / "r" / "shot.jpg.mov", 3, "video/quicktime", b"mov") == (
        seen, got.path, got.size, got.content_type, got.path.read_bytes())
