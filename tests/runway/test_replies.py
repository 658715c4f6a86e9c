"""Tests for hostile API replies: nesting bombs and endless bodies end as one clear error."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import respx
from runway_mocks import BASE

from runwatchd import errors
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.replies import MAX_REPLY_BYTES
from runwatchd.runway.retries import RetryPolicy

BOMB = b"[" * 200_000 + b"]" * 200_000
ONE_TRY = RetryPolicy(max_attempts=1, initial_delay=0.0, max_delay=0.0)


def _endless() -> Iterator[bytes]:
    while True:
        yield b" " * 65536


def test_a_nesting_bomb_from_get_task_is_a_network_error(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """`[[[[...` as a task reply is "not a JSON object", not a RecursionError."""
    respx_mock.get(f"{BASE}/v1/tasks/t1").mock(return_value=httpx.Response(200, content=BOMB))
    with pytest.raises(errors.NetworkError, match="not a JSON object"):
        make_client(retry=ONE_TRY).get_task("t1")


def test_a_nesting_bomb_after_a_generation_post_is_uncertain(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """A bomb answering a generation POST means a task may exist: SubmitUncertain, once."""
    route = respx_mock.post(f"{BASE}/v1/image_to_video").mock(
        return_value=httpx.Response(200, content=BOMB))
    with pytest.raises(errors.SubmitUncertain):
        make_client().create_task("image_to_video", {"model": "gen4.5"})
    assert 1 == route.call_count


def test_a_nesting_bomb_in_an_error_reply_still_maps_the_status(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """A 400 whose body is a bomb is still InputRejected (the detail is just the body's start)."""
    respx_mock.get(f"{BASE}/v1/tasks/t2").mock(return_value=httpx.Response(400, content=BOMB))
    with pytest.raises(errors.InputRejected):
        make_client().get_task("t2")


def test_an_endless_reply_is_cut_at_the_cap(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """A reply that never ends is read up to the cap, then a NetworkError (retried as usual)."""
    respx_mock.get(f"{BASE}/v1/organization").mock(
        return_value=httpx.Response(200, content=_endless()))
    with pytest.raises(errors.NetworkError, match="larger than"):
        make_client(retry=ONE_TRY).check_key()


def test_an_endless_reply_to_a_generation_post_is_uncertain_not_retried(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """An oversized reply to a POST that was sent cannot prove no task was made: uncertain."""
    route = respx_mock.post(f"{BASE}/v1/image_to_video").mock(
        return_value=httpx.Response(200, content=_endless()))
    with pytest.raises(errors.SubmitUncertain, match="larger than"):
        make_client().create_task("image_to_video", {"model": "gen4.5"})
    assert 1 == route.call_count


def test_a_reply_just_under_the_cap_is_read(
        respx_mock: respx.MockRouter, make_client: Callable[..., RunwayClient]) -> None:
    """The cap leaves any real reply alone (a task with many output URLs is a few KB)."""
    padding = " " * (MAX_REPLY_BYTES - 100)
    body = ('{"id": "t3", "status": "RUNNING"' + padding + "}").encode()
    respx_mock.get(f"{BASE}/v1/tasks/t3").mock(return_value=httpx.Response(200, content=body))
    assert "RUNNING" == make_client().get_task("t3")["status"]
