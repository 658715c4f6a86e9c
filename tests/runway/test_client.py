"""Tests for runwatchd.runway.client against respx mocks: every retry and error path, no secret leaks."""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from helpers import multipart_parts
from runway_mocks import BASE, SECRET

from runwatchd import errors
from runwatchd.runway import client as clientmod
from runwatchd.runway import http_errors
from runwatchd.runway.api import Operation
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy

STORAGE = "https://storage.test/bucket"
URI = "runway://upload/abc123"
FIELDS = {"key": "uploads/abc123/clip.mp4", "policy": "eyJleHAiOiIyMDI2In0=", "x-amz-signature": "f00"}
SLOT = {"uploadUrl": STORAGE, "fields": FIELDS, "runwayUri": URI}


def slot_route(respx_mock: respx.MockRouter, *responses: httpx.Response) -> respx.Route:
    route = respx_mock.post(f"{BASE}/v1/uploads")
    if responses:
        route.side_effect = list(responses)
    else:
        route.return_value = httpx.Response(200, json=SLOT)
    return route


def storage_route(respx_mock: respx.MockRouter, *statuses: int | Exception,
                  on_request: Callable[[httpx.Request], None] | None = None) -> respx.Route:
    """Storage answers `statuses` in turn (an exception is raised instead); 204 by default."""
    answers = list(statuses) or [204]

    def answer(request: httpx.Request) -> httpx.Response:
        if on_request:
            on_request(request)
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(status, Exception):
            raise status
        body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        return httpx.Response(status, content=b"" if status < 300 else body)

    return respx_mock.post(STORAGE).mock(side_effect=answer)


def api_error(status: int, error: str = "nope", **kw: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": error, **kw})


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


# -- API error mapping --------------------------------------------------------------------


def test_401_key_rejected_not_retried(respx_mock: respx.MockRouter, clip: Path,
                                      make_client: Callable[..., RunwayClient],
                                      sleeps: list[float]) -> None:
    """401 stops at once with a message that says the key was rejected."""
    slots = slot_route(respx_mock, api_error(401, "Invalid API key"))
    with pytest.raises(errors.KeyRejected) as info:
        make_client().upload(clip)
    assert (1, [], 401) == (slots.call_count, sleeps, info.value.status)
    assert ("your API key was rejected (401 Unauthorized from POST /v1/uploads: Invalid API key); "
            "check RUNWAYML_API_SECRET or api_secret_file") == str(info.value)


def test_400_no_credits(respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """400 about credits is NoCredits, not retried."""
    route = respx_mock.post(f"{BASE}/v1/image_to_video").mock(
        return_value=api_error(400, "You do not have enough credits to run this task."))
    with pytest.raises(errors.NoCredits):
        make_client().create_task("image_to_video", {"promptText": "x"})
    assert 1 == route.call_count


def test_400_invalid_names_error_and_issues(respx_mock: respx.MockRouter,
                                            make_client: Callable[..., RunwayClient]) -> None:
    """Other 400s are InputRejected with the API's error and issues in the message."""
    respx_mock.post(f"{BASE}/v1/image_to_video").mock(return_value=api_error(
        400, "Validation of body failed",
        issues=[{"path": ["ratio"], "message": "Invalid enum value"},
                {"path": ["duration"], "message": "Expected number"}]))
    with pytest.raises(errors.InputRejected) as info:
        make_client().create_task("image_to_video", {})
    assert ("400 Bad Request from POST /v1/image_to_video: Validation of body failed: ratio: "
            "Invalid enum value; duration: Expected number") == str(info.value)


def test_404_task(respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """A task that does not exist is InputRejected(404), not retried."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t-1").mock(return_value=api_error(404, "Not found"))
    with pytest.raises(errors.InputRejected) as info:
        make_client().get_task("t-1")
    assert (404, 1) == (info.value.status, route.call_count)


def test_429_retry_after_seconds(respx_mock: respx.MockRouter, sleeps: list[float],
                                 make_client: Callable[..., RunwayClient]) -> None:
    """429 with Retry-After: 7 waits exactly 7 s (backoff is zero here), then succeeds."""
    respx_mock.get(f"{BASE}/v1/tasks/t").mock(side_effect=[
        httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "7"}),
        httpx.Response(200, json={"id": "t", "status": "RUNNING"})])
    assert ("RUNNING", [7.0]) == (make_client().get_task("t")["status"], sleeps)


def test_429_retry_after_http_date(respx_mock: respx.MockRouter, sleeps: list[float],
                                   make_client: Callable[..., RunwayClient]) -> None:
    """429 with an HTTP-date Retry-After waits until that moment."""
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    respx_mock.get(f"{BASE}/v1/tasks/t").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": when}),
        httpx.Response(200, json={"id": "t"})])
    make_client().get_task("t")
    assert (1, True) == (len(sleeps), 27.0 < sleeps[0] <= 30.0)


def test_retry_after_longer_than_deadline_gives_up(respx_mock: respx.MockRouter,
                                                   sleeps: list[float],
                                                   make_client: Callable[..., RunwayClient]) -> None:
    """A wait that would pass the retry deadline is not slept; RateLimited carries retry_after."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(errors.RateLimited) as info:
        make_client(retry=RetryPolicy(initial_delay=0.0, deadline=60.0)).get_task("t")
    assert (1, [], 120.0) == (route.call_count, sleeps, info.value.retry_after)


def test_backoff_is_exponential_full_jitter(respx_mock: respx.MockRouter, sleeps: list[float],
                                            make_client: Callable[..., RunwayClient]) -> None:
    """Without Retry-After each delay lies in [0, min(max_delay, initial * 2^n)]."""
    respx_mock.get(f"{BASE}/v1/tasks/t").mock(return_value=httpx.Response(503))
    policy = RetryPolicy(max_attempts=8, initial_delay=1.0, max_delay=10.0)
    with pytest.raises(errors.ServerError):
        make_client(retry=policy).get_task("t")
    caps = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert (7, True) == (len(sleeps), all(0.0 <= s <= c for s, c in zip(sleeps, caps, strict=True)))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_get_task_server_errors_retried(respx_mock: respx.MockRouter, status: int,
                                        make_client: Callable[..., RunwayClient]) -> None:
    """408 and 5xx on a read are retried."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t").mock(side_effect=[
        httpx.Response(status), httpx.Response(200, json={"id": "t"})])
    assert ({"id": "t"}, 2) == (make_client().get_task("t"), route.call_count)


def test_attempt_cap(respx_mock: respx.MockRouter, sleeps: list[float],
                     make_client: Callable[..., RunwayClient]) -> None:
    """A server that keeps failing is tried max_attempts times, then ServerError is raised."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t").mock(return_value=httpx.Response(503))
    with pytest.raises(errors.ServerError) as info:
        make_client(retry=RetryPolicy(max_attempts=3, initial_delay=0.0)).get_task("t")
    assert (3, 2, "503 Service Unavailable from GET /v1/tasks/t") == (
        route.call_count, len(sleeps), str(info.value))


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                 httpx.RemoteProtocolError("dropped")])
def test_get_task_network_errors_retried(respx_mock: respx.MockRouter, exc: Exception,
                                         make_client: Callable[..., RunwayClient]) -> None:
    """Connection errors and timeouts on a read are retried."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t").mock(side_effect=[
        exc, httpx.Response(200, json={"id": "t"})])
    assert ({"id": "t"}, 2) == (make_client().get_task("t"), route.call_count)


def test_connection_error_exhausted(respx_mock: respx.MockRouter,
                                    make_client: Callable[..., RunwayClient]) -> None:
    """A connection that never works ends in NetworkError naming the call."""
    respx_mock.get(f"{BASE}/v1/organization").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.NetworkError) as info:
        make_client().check_key()
    assert "GET api.test/v1/organization failed: ConnectError (refused)" == str(info.value)


def test_invalid_json_retried(respx_mock: respx.MockRouter,
                              make_client: Callable[..., RunwayClient]) -> None:
    """A 200 that is not JSON is a NetworkError, retried."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t").mock(side_effect=[
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.Response(200, json={"id": "t"})])
    assert ({"id": "t"}, 2) == (make_client().get_task("t"), route.call_count)


def test_check_key(respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """check_key returns the organization reply."""
    respx_mock.get(f"{BASE}/v1/organization").mock(
        return_value=httpx.Response(200, json={"creditBalance": 42}))
    assert {"creditBalance": 42} == make_client().check_key()


def test_check_key_attempts_cap_the_retries(respx_mock: respx.MockRouter,
                                            make_client: Callable[..., RunwayClient]) -> None:
    """check_key(attempts=2) gives up after two tries of an unreachable API (start-up check)."""
    route = respx_mock.get(f"{BASE}/v1/organization").mock(
        side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.NetworkError):
        make_client().check_key(attempts=2)
    assert 2 == route.call_count


def test_cancel_task(respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """DELETE cancels; a task already gone (404) counts as cancelled."""
    ok = respx_mock.delete(f"{BASE}/v1/tasks/a").mock(return_value=httpx.Response(204))
    gone = respx_mock.delete(f"{BASE}/v1/tasks/b").mock(return_value=api_error(404))
    c = make_client()
    c.cancel_task("a")
    c.cancel_task("b")
    assert (1, 1) == (ok.call_count, gone.call_count)


def test_task_id_is_quoted(respx_mock: respx.MockRouter,
                           make_client: Callable[..., RunwayClient]) -> None:
    """A task id cannot walk to another API path."""
    route = respx_mock.get(f"{BASE}/v1/tasks/..%2Forganization").mock(
        return_value=httpx.Response(200, json={"id": "x"}))
    make_client().get_task("../organization")
    assert 1 == route.call_count


# -- create_task: never bill twice --------------------------------------------------------


@pytest.mark.parametrize("first", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                                   httpx.Response(429), httpx.Response(502),
                                   httpx.Response(503)])
def test_create_task_raises_retryable_where_no_task_exists(
        respx_mock: respx.MockRouter, first: Any, sleeps: list[float],
        make_client: Callable[..., RunwayClient]) -> None:
    """Not connected, 429, 502 and 503 raise RetryableError after one POST: the caller retries."""
    route = respx_mock.post(f"{BASE}/v1/text_to_image").mock(side_effect=[first])
    with pytest.raises(errors.RetryableError):
        make_client().create_task("text_to_image", {})
    assert (1, []) == (route.call_count, sleeps)


def test_submit_retry_delay_honours_the_server(make_client: Callable[..., RunwayClient]) -> None:
    """retry-after-ms and Retry-After set a floor; x-should-retry: false stops the retries."""
    mapper = http_errors.ErrorMapper(SECRET)
    def error(headers: dict[str, str]) -> errors.RetryableError:
        e = mapper.status_error(httpx.Response(429, headers=headers), "POST /v1/x", "api")
        assert isinstance(e, errors.RetryableError)
        return e
    client = make_client(retry=RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02))
    now = time.monotonic()
    assert 2.5 <= (client.submit_retry_delay(1, now, error({"retry-after-ms": "2500"})) or 0)
    assert 7.0 <= (client.submit_retry_delay(1, now, error({"Retry-After": "7"})) or 0)
    assert None is client.submit_retry_delay(1, now, error({"x-should-retry": "false"}))
    assert None is client.submit_retry_delay(3, now, error({}))


def test_other_calls_stop_on_x_should_retry_false(respx_mock: respx.MockRouter,
                                                  make_client: Callable[..., RunwayClient]) -> None:
    """A 503 with x-should-retry: false is not retried by the client's own retry loop."""
    route = respx_mock.get(f"{BASE}/v1/tasks/t1").mock(side_effect=[
        httpx.Response(503, headers={"x-should-retry": "false"}),
        httpx.Response(200, json={"id": "t1"})])
    with pytest.raises(errors.ServerError):
        make_client().get_task("t1")
    assert 1 == route.call_count


@pytest.mark.parametrize("answer", [
    httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("reset"),
    httpx.WriteTimeout("stuck"), httpx.Response(500), httpx.Response(504),
    httpx.Response(408), httpx.Response(200, content=b"not json"),
    httpx.Response(200, json={"estimatedCost": 5}),
])
def test_create_task_uncertain(respx_mock: respx.MockRouter, answer: Any, sleeps: list[float],
                               make_client: Callable[..., RunwayClient]) -> None:
    """A failure after sending is SubmitUncertain, never resubmitted."""
    route = respx_mock.post(f"{BASE}/v1/image_to_video").mock(side_effect=[answer])
    with pytest.raises(errors.SubmitUncertain) as info:
        make_client().create_task("image_to_video", {"promptText": "x"})
    assert (1, [], True) == (route.call_count, sleeps,
                             "a task may have been created and billed" in str(info.value))


def test_create_task_rejects_odd_endpoint(make_client: Callable[..., RunwayClient],
                                          respx_mock: respx.MockRouter) -> None:
    """An endpoint name that is not a plain identifier never reaches the network."""
    with pytest.raises(errors.InputRejected):
        make_client().create_task("../tasks", {})


# -- the secret ---------------------------------------------------------------------------


def _failures(respx_mock: respx.MockRouter, clip: Path) -> list[Callable[[RunwayClient], Any]]:
    echo = {"error": f"key {SECRET} is not valid"}
    respx_mock.post(f"{BASE}/v1/uploads").mock(return_value=httpx.Response(401, json=echo))
    respx_mock.get(f"{BASE}/v1/organization").mock(side_effect=httpx.ConnectError("refused"))
    respx_mock.get(f"{BASE}/v1/tasks/a").mock(return_value=httpx.Response(400, json=echo))
    respx_mock.get(f"{BASE}/v1/tasks/b").mock(return_value=httpx.Response(503, json=echo))
    respx_mock.post(f"{BASE}/v1/text_to_video").mock(side_effect=httpx.ReadTimeout("slow"))
    respx_mock.post(f"{BASE}/v1/sound_effect").mock(return_value=httpx.Response(502, json=echo))
    return [
        lambda c: c.upload(clip),
        lambda c: c.check_key(),
        lambda c: c.get_task("a"),
        lambda c: c.get_task("b"),
        lambda c: c.create_task("text_to_video", {}),
        lambda c: c.create_task("sound_effect", {}),
    ]


def test_secret_never_leaks(respx_mock: respx.MockRouter, clip: Path,
                            make_client: Callable[..., RunwayClient],
                            caplog: pytest.LogCaptureFixture) -> None:
    """No error's str/repr, chained httpx request, or log line (at DEBUG) contains the key."""
    c = make_client(retry=RetryPolicy(max_attempts=2, initial_delay=0.0))
    raised: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        for call in _failures(respx_mock, clip):
            with pytest.raises(errors.RunwayError) as info:
                call(c)
            raised.append(info.value)
    texts = [str(e) + repr(e) + repr(e.args) for e in raised]
    for e in raised:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, httpx.RequestError):
            texts.append(str(cause.request.headers.get("Authorization")))
    assert (6, [], False, False) == (
        len(raised), [t for t in texts if SECRET in t], SECRET in caplog.text, SECRET in repr(c))


@pytest.mark.parametrize("url", ["ftp://api.test", "api.test", "https://", "http://[::1"])
def test_bad_base_url_refused(url: str) -> None:
    """A base URL that is not http(s)://host is refused at construction."""
    with pytest.raises(ValueError):
        RunwayClient(SECRET, url)


def test_secret_with_whitespace_refused() -> None:
    """A key with a newline inside (a bad secret file) is refused without echoing it."""
    with pytest.raises(ValueError) as info:
        RunwayClient("abc\ndef", BASE)
    assert "abc" not in str(info.value)
