"""Tests for runwatchd.runway.client's uploads against respx mocks: every retry and error path."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from helpers import multipart_parts
from runway_mocks import (
    BASE,
    FIELDS,
    SECRET,
    SLOT,
    STORAGE,
    URI,
    slot_route,
    storage_route,
)

from runwatchd import errors
from runwatchd.runway import client as clientmod
from runwatchd.runway.api import Operation
from runwatchd.runway.client import RunwayClient

# -- upload -------------------------------------------------------------------------------


def test_upload_success(respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient],
                        clip: Path) -> None:
    """One slot, one streamed POST; the result carries the URI, stat and the content's sha256."""
    slot_route(respx_mock)
    storage_route(respx_mock)
    before = datetime.now(UTC)
    result = make_client().upload(clip)
    st = clip.stat()
    assert (URI, st.st_size, st.st_mtime_ns, hashlib.sha256(clip.read_bytes()).hexdigest(), 1) == (
        result.runway_uri, result.size, result.mtime_ns, result.sha256, result.attempts)
    assert before <= result.uploaded_at <= datetime.now(UTC)


def test_upload_headers(respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient],
                        clip: Path) -> None:
    """API calls carry key, version and user agent; the storage POST carries no key."""
    slots = slot_route(respx_mock)
    storage = storage_route(respx_mock)
    make_client().upload(clip)
    api, store = slots.calls.last.request, storage.calls.last.request
    assert (f"Bearer {SECRET}", "2024-11-06", f"runwatchd/{clientmod.__version__}") == (
        api.headers["Authorization"], api.headers["X-Runway-Version"], api.headers["User-Agent"])
    assert (None, None, f"runwatchd/{clientmod.__version__}") == (
        store.headers.get("Authorization"), store.headers.get("X-Runway-Version"),
        store.headers["User-Agent"])
    assert {"filename": "clip.mp4", "type": "ephemeral"} == json.loads(api.content)


def test_upload_multipart_fields_first_file_last(respx_mock: respx.MockRouter,
                                                 make_client: Callable[..., RunwayClient],
                                                 clip: Path) -> None:
    """The storage body has every field verbatim, in order, then the file part, with a length."""
    slot_route(respx_mock)
    storage = storage_route(respx_mock)
    make_client().upload(clip)
    request = storage.calls.last.request
    parts = multipart_parts(request.headers["Content-Type"], request.content)
    assert ([v.encode() for v in FIELDS.values()] + [clip.read_bytes()],
            str(len(request.content))) == ([p for _, p in parts], request.headers["Content-Length"])


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_upload_storage_server_errors_retried(respx_mock: respx.MockRouter,
                                              make_client: Callable[..., RunwayClient],
                                              clip: Path, status: int, sleeps: list[float]) -> None:
    """408 and 5xx from storage are retried with a fresh slot."""
    slots = slot_route(respx_mock)
    storage_route(respx_mock, status, 204)
    result = make_client().upload(clip)
    assert (2, 2, [0.0]) == (result.attempts, slots.call_count, sleeps)


def test_slot_expired_asks_for_new_slot(respx_mock: respx.MockRouter,
                                        make_client: Callable[..., RunwayClient],
                                        clip: Path) -> None:
    """A 403 from the upload URL means a new slot, then success."""
    slots = slot_route(respx_mock)
    storage_route(respx_mock, 403, 403, 204)
    result = make_client().upload(clip)
    assert (3, 3) == (result.attempts, slots.call_count)


def test_slot_expired_exhausts_attempts(respx_mock: respx.MockRouter,
                                        make_client: Callable[..., RunwayClient],
                                        clip: Path) -> None:
    """A slot that keeps being refused ends with SlotExpired after max_attempts."""
    slots = slot_route(respx_mock)
    storage_route(respx_mock, 403)
    with pytest.raises(errors.SlotExpired) as info:
        make_client().upload(clip)
    assert (4, 403, True) == (slots.call_count, info.value.status,
                              "AccessDenied Request has expired" in str(info.value))


def test_each_attempt_reopens_the_file(respx_mock: respx.MockRouter,
                                       make_client: Callable[..., RunwayClient], clip: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt opens the file afresh (a stale handle is never reused)."""
    opened: list[Path] = []

    def counting_open(path: Path, mode: str) -> Any:
        opened.append(Path(path))
        return open(path, mode)

    monkeypatch.setattr(clientmod, "open", counting_open, raising=False)
    slot_route(respx_mock)
    storage_route(respx_mock, 503, httpx.ReadError("reset"), 204)
    make_client().upload(clip)
    assert [clip] * 3 == opened


def test_upload_retry_log_and_on_retry(respx_mock: respx.MockRouter, clip: Path,
                                       make_client: Callable[..., RunwayClient],
                                       caplog: pytest.LogCaptureFixture) -> None:
    """Each retry logs one warning line and calls on_retry with the operation, error and
    delay."""
    seen: list[tuple[str, str, float]] = []
    slot_route(respx_mock)
    storage_route(respx_mock, 503, 204)
    c = make_client(on_retry=lambda op, exc, delay: seen.append((op, type(exc).__name__, delay)))
    with caplog.at_level(logging.WARNING, logger="runwatchd.runway.client"):
        c.upload(clip)
    assert [(Operation.UPLOAD, "ServerError", 0.0)] == seen
    assert ["retrying upload of clip.mp4 in 0.0 s (attempt 2/4): 503 Service Unavailable from "
            "POST storage.test/bucket: AccessDenied Request has expired"] == caplog.messages


def test_upload_progress_takes_back_failed_attempt(respx_mock: respx.MockRouter, clip: Path,
                                                   make_client: Callable[..., RunwayClient]) -> None:
    """Progress deltas sum to the file size even after an attempt that sent everything failed."""
    deltas: list[int] = []
    slot_route(respx_mock)
    storage_route(respx_mock, 503, 204)
    make_client().upload(clip, progress=deltas.append)
    assert (5000, -5000 in deltas) == (sum(deltas), True)


def test_upload_invalid_file_makes_no_request(respx_mock: respx.MockRouter, tmp_path: Path,
                                              make_client: Callable[..., RunwayClient]) -> None:
    """A local check failure raises InvalidFile before any request (respx would fail it)."""
    (tmp_path / "tiny.jpg").write_bytes(b"x")
    with pytest.raises(errors.InvalidFile):
        make_client().upload(tmp_path / "tiny.jpg")


def test_upload_file_changed_during_upload(respx_mock: respx.MockRouter, clip: Path,
                                           make_client: Callable[..., RunwayClient]) -> None:
    """A file appended to while it streams raises FileChanged and is not retried."""
    def append(request: httpx.Request) -> None:
        with clip.open("ab") as f:
            f.write(b"more")

    slots = slot_route(respx_mock)
    storage_route(respx_mock, on_request=append)
    with pytest.raises(errors.FileChanged) as info:
        make_client().upload(clip)
    assert (1, "clip.mp4: changed during its upload (size 5000 -> 5004 bytes); it will be "
               "retried once it settles") == (slots.call_count, str(info.value))


def test_upload_file_truncated_mid_stream(respx_mock: respx.MockRouter, clip: Path,
                                          make_client: Callable[..., RunwayClient]) -> None:
    """A file cut short while it is read raises FileChanged, not a network error."""
    slot_route(respx_mock)
    storage_route(respx_mock)
    with pytest.raises(errors.FileChanged) as info:
        make_client().upload(clip, progress=lambda n: os.truncate(clip, 1000))
    assert "size 5000 -> 1000 bytes" in str(info.value)


def test_on_retry_may_stop_retrying(respx_mock: respx.MockRouter, sleeps: list[float],
                                    make_client: Callable[..., RunwayClient]) -> None:
    """An exception raised by on_retry (say, on shutdown) ends the retries without sleeping."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t").mock(return_value=httpx.Response(503))

    def stop(what: str, exc: BaseException, delay: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_client(on_retry=stop).get_task("t")
    assert (1, []) == (route.call_count, sleeps)


def test_upload_file_replaced_during_upload(respx_mock: respx.MockRouter, clip: Path,
                                            make_client: Callable[..., RunwayClient]) -> None:
    """A file renamed over the path during the upload raises FileChanged."""
    other = clip.with_name("other.mp4")
    other.write_bytes(clip.read_bytes())
    slot_route(respx_mock)
    storage_route(respx_mock, on_request=lambda r: other.replace(clip))
    with pytest.raises(errors.FileChanged) as info:
        make_client().upload(clip)
    assert "replaced by another file" in str(info.value)


def test_upload_file_changed_between_attempts(respx_mock: respx.MockRouter, clip: Path,
                                              make_client: Callable[..., RunwayClient]) -> None:
    """A file modified after a failed attempt is not uploaded again by the retry."""
    slots = slot_route(respx_mock)

    def grow(request: httpx.Request) -> None:
        os.utime(clip, ns=(0, 10**18))

    storage_route(respx_mock, 503, on_request=grow)
    with pytest.raises(errors.FileChanged):
        make_client().upload(clip)
    assert 1 == slots.call_count


def test_upload_deadline(respx_mock: respx.MockRouter, clip: Path,
                         make_client: Callable[..., RunwayClient]) -> None:
    """An attempt past its overall deadline fails as NetworkError, retried up to the cap."""
    slots = slot_route(respx_mock)
    respx_mock.post(STORAGE).mock(return_value=httpx.Response(204))
    with pytest.raises(errors.NetworkError) as info:
        make_client(upload_deadline=0.0).upload(clip)
    assert (4, "upload of clip.mp4 did not finish within 0 s") == (slots.call_count,
                                                                  str(info.value))


def test_storage_answering_early_is_retried(respx_mock: respx.MockRouter, clip: Path,
                                            make_client: Callable[..., RunwayClient],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2xx before the whole file was sent is not taken as success."""
    monkeypatch.setattr(respx.mocks.HTTPCoreMocker, "prepare_sync_request",
                        classmethod(lambda cls, httpx_request, **kw: (httpx_request, kw)))
    slot_route(respx_mock)
    respx_mock.post(STORAGE).mock(return_value=httpx.Response(204))
    with pytest.raises(errors.ServerError) as info:
        make_client().upload(clip)
    assert "before all of clip.mp4 was sent (0 of 5000 bytes)" in str(info.value)


def test_malformed_slot_reply_retried(respx_mock: respx.MockRouter, clip: Path,
                                      make_client: Callable[..., RunwayClient]) -> None:
    """A slot reply without uploadUrl is a server fault and is retried."""
    slots = slot_route(respx_mock, httpx.Response(200, json={"fields": {}}),
                       httpx.Response(200, json=SLOT))
    storage_route(respx_mock)
    assert (1, 2) == (make_client().upload(clip).attempts, slots.call_count)


def test_slot_failures_do_not_use_up_upload_attempts(respx_mock: respx.MockRouter, clip: Path,
                                                     make_client: Callable[..., RunwayClient]
                                                     ) -> None:
    """The slot request retries on its own: 3 slot 503s and 3 storage 503s still succeed."""
    busy = httpx.Response(503, json={"error": "busy"})
    ok = httpx.Response(200, json=SLOT)
    slots = slot_route(respx_mock, busy, busy, busy, ok, ok, ok, ok)
    storage_route(respx_mock, 503, 503, 503, 204)
    assert (4, 7) == (make_client().upload(clip).attempts, slots.call_count)


def test_slot_failures_exhausted_are_not_retried_again(respx_mock: respx.MockRouter, clip: Path,
                                                       make_client: Callable[..., RunwayClient]
                                                       ) -> None:
    """A slot request that used up its retries ends the upload (no retries of retries)."""
    slots = slot_route(respx_mock, *[httpx.Response(503, json={"error": "busy"})] * 20)
    with pytest.raises(errors.ServerError) as info:
        make_client().upload(clip)
    assert (4, 503) == (slots.call_count, info.value.status)
