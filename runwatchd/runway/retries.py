"""How the client retries: one policy (attempts, backoff, an overall deadline), the server's
wishes honoured (Retry-After, retry-after-ms, x-should-retry: false), every retry logged as one
line and reported to `on_retry` by its Operation token.

Retrier.run() wraps a call in tenacity (reraise, stop_before_delay, an injectable sleep);
next_delay() and sleep_before() serve the Submitter's generation POSTs, whose loop lives where
the store sees each attempt (lifecycle: a claim per POST).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import tenacity

from runwatchd import errors
from runwatchd.runway.api import Operation

log = logging.getLogger("runwatchd.runway.client")  # the client's retry lines, as users know them

_T = TypeVar("_T")
OnRetry = Callable[[Operation, BaseException, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    initial_delay: float = 1.0
    max_delay: float = 60.0
    deadline: float = 900.0


class Retrier:
    """Retries under one RetryPolicy; `sleep` is injectable (tests), `on_retry(operation, error,
    delay)` is called before each retry sleep and may raise to stop retrying."""

    def __init__(self, policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep,
                 on_retry: OnRetry | None = None) -> None:
        self.policy = policy
        self._sleep = sleep
        self._on_retry = on_retry

    def capped(self, attempts: int | None) -> RetryPolicy:
        """The policy with at most `attempts` tries (None: as it is)."""
        if attempts is None:
            return self.policy
        return replace(self.policy, max_attempts=min(attempts, self.policy.max_attempts))

    def run(self, op: Operation, what: str, fn: Callable[[], _T], *,
            policy: RetryPolicy | None = None) -> _T:
        """fn(), retried on RetryableError the server did not forbid retrying."""
        policy = policy or self.policy
        retryer = tenacity.Retrying(
            sleep=self._sleep,
            stop=(tenacity.stop_after_attempt(policy.max_attempts)
                  | tenacity.stop_before_delay(policy.deadline)),
            wait=self._wait,
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, errors.RetryableError) and e.should_retry),
            before_sleep=lambda rs: self._before_sleep(op, what, rs, policy.max_attempts),
            reraise=True,
            name=what,
        )
        return retryer(fn)

    def next_delay(self, attempt: int, started: float,
                   error: errors.RetryableError) -> float | None:
        """Seconds to wait before try `attempt` + 1 after `error`, or None: the policy is spent
        or the server said not to retry. `started`: time.monotonic() before the first try."""
        policy = self.policy
        if not error.should_retry or attempt >= policy.max_attempts:
            return None
        # Full jitter, as tenacity's wait_random_exponential in _wait().
        ceiling = min(policy.max_delay, policy.initial_delay * 2 ** (attempt - 1))
        backoff = random.uniform(0, ceiling)
        delay = backoff if error.retry_after is None else max(error.retry_after, backoff)
        return None if time.monotonic() - started + delay > policy.deadline else delay

    def sleep_before(self, op: Operation, what: str, attempt: int, delay: float,
                     error: errors.RetryableError) -> None:
        """The sleep before try `attempt` + 1 of a loop run outside run() (logged and counted
        like every retry)."""
        log.warning("retrying %s in %.1f s (attempt %d/%d): %s", what, delay, attempt + 1,
                    self.policy.max_attempts, error)
        if self._on_retry is not None:  # may raise to stop retrying, as in _before_sleep()
            self._on_retry(op, error, delay)
        self._sleep(delay)

    def _wait(self, rs: tenacity.RetryCallState) -> float:
        policy = self.policy
        backoff = tenacity.wait_random_exponential(
            multiplier=policy.initial_delay, max=policy.max_delay)(rs)
        error = rs.outcome.exception() if rs.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return max(retry_after, backoff) if retry_after is not None else backoff

    def _before_sleep(self, op: Operation, what: str, rs: tenacity.RetryCallState,
                      max_attempts: int) -> None:
        error = rs.outcome.exception() if rs.outcome else None
        delay = rs.upcoming_sleep
        log.warning("retrying %s in %.1f s (attempt %d/%d): %s", what, delay,
                    rs.attempt_number + 1, max_attempts, error)
        if self._on_retry is not None and error is not None:
            self._on_retry(op, error, delay)
