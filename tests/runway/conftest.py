"""Fixtures for the Runway client's tests: clients against respx mocks, with recorded sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from runway_mocks import BASE, SECRET

from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the client slept, in order (its sleep is this list's append)."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., RunwayClient]]:
    """Build clients with zero backoff (so delays are exactly what the server asked for)."""
    made: list[RunwayClient] = []

    def make(**kw: Any) -> RunwayClient:
        kw.setdefault("retry", RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.0))
        made.append(RunwayClient(SECRET, BASE, sleep=sleeps.append, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()
