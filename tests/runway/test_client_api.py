"""Tests for runwatchd.runway.client's API calls against respx mocks: error mapping, retries and
Retry-After, create_task's never-bill-twice rules, and the secret never leaking."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from runway_mocks import (
    BASE,
    SECRET,
    api_error,
    slot_route,
)

from runwatchd import errors
from runwatchd.runway import http_errors
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy

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


@pytest.mark.parametrize("endpoint", [
    "../tasks", "generate/../tasks", "generate/video/x", "/generate", "generate/", "tasks?x=1",
    "Generate/video", "generate//video", "",
])
def test_create_task_rejects_odd_endpoint(make_client: Callable[..., RunwayClient],
                                          respx_mock: respx.MockRouter, endpoint: str) -> None:
    """An endpoint name that is not an identifier, or two joined by one slash, never reaches
    the network (respx refuses any request this test did not mock)."""
    with pytest.raises(errors.InputRejected):
        make_client().create_task(endpoint, {})


@pytest.mark.parametrize("endpoint", ["generate/video", "recipes/product_ad"])
def test_create_task_posts_to_a_two_part_endpoint(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient],
        endpoint: str) -> None:
    """/v1/generate/* and /v1/recipes/* are POSTed to as named."""
    route = respx_mock.post(f"{BASE}/v1/{endpoint}").mock(
        return_value=httpx.Response(200, json={"id": "t-1"}))
    assert {"id": "t-1"} == make_client().create_task(endpoint, {"configId": "c"})
    assert 1 == route.call_count


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
