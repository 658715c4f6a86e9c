"""The organization's credit balance: read every 10 minutes off the main loop, reported, warned on.

GET /v1/organization (RunwayClient.check_key) answers with `creditBalance`. The daemon's health
heartbeat pokes a CreditWatch every turn; when a check is due, one thread asks (one attempt: a
balance that is a little late matters less than a thread stuck in retries). The balance goes to
`status`, the `runwatchd_credits` gauge, and one WARNING line when it falls under
`[daemon] credits_warning_below` (again only after it has been back above it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from runwatchd.service.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_EVERY = 600.0
# After a failed check: sooner than the next regular one, never a hammering.
RETRY_AFTER = 60.0


class CreditWatch:
    """Reads the balance every `every` seconds on a thread of its own; thread-safe."""

    def __init__(
        self,
        check: Callable[[], dict[str, Any]],
        *,
        warn_below: Callable[[], float],
        metrics: Metrics | None = None,
        every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._check = check
        self._warn_below = warn_below
        self._metrics = metrics
        self._every = every
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._due = float("-inf")
        self._thread: threading.Thread | None = None
        self._balance: float | None = None
        self._checked_at: float | None = None
        self._low = False

    def poke(self) -> None:
        """From the main loop: start a check when one is due and none runs."""
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            if busy or self._clock() < self._due:
                return
            self._due = self._clock() + self._every
            self._thread = threading.Thread(target=self.check_now, name="runwatchd-credits",
                                            daemon=True)
            self._thread.start()

    def check_now(self) -> None:
        """Read the balance now (on the caller's thread); never raises."""
        try:
            organization = self._check()
        except Exception as e:  # noqa: BLE001 - a balance check must never hurt the daemon
            log.debug("reading the credit balance failed: %s", e)
            with self._lock:
                self._due = min(self._due, self._clock() + RETRY_AFTER)
            return
        balance = organization.get("creditBalance")
        if isinstance(balance, bool) or not isinstance(balance, (int, float)):
            log.debug("no credit balance in the organization's reply")
            return
        self.record(float(balance))

    def record(self, balance: float) -> None:
        """A balance read just now: report it, and warn once when it falls under the line."""
        threshold = self._warn_below()
        now = self._wall_clock()
        with self._lock:
            self._balance, self._checked_at = balance, now
            newly_low = balance < threshold and not self._low
            self._low = balance < threshold
        if self._metrics is not None:
            self._metrics.set_credits(balance, now)
        if newly_low:
            log.warning("Runway credits are low: %g left (warning below %g; [daemon] "
                        "credits_warning_below). Generations stop when they run out.",
                        balance, threshold, extra={"event": "credits_low"})

    @property
    def balance(self) -> float | None:
        with self._lock:
            return self._balance

    def report(self) -> dict[str, Any] | None:
        """For status.json: balance, when it was read (Unix time), whether it is under the
        warning line; None before the first read."""
        with self._lock:
            if self._balance is None:
                return None
            return {"balance": self._balance, "checked_at": self._checked_at, "low": self._low,
                    "warning_below": self._warn_below()}

    def stop(self, timeout: float = 2.0) -> None:
        """Wait a little for a check in progress (it is a daemon thread: it cannot hold the
        process up for longer)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
