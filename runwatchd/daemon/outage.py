"""Losing the store: what a node does while its database is unreachable, and how it comes back.

While the store cannot be reached nothing new is claimed (no upload, no submission without a
lease or a claim in the store): the scheduler dispatches nothing, a worker whose store call fails
puts its file back in the queue (an upload it finished wrote its sidecar first, so doing the file
again reuses it rather than uploading again), the main loop probes the store once a second. One
line says the store is gone, one that it is back. When it is back the node renews its leases
at once, then waits a third of the lease time before claiming anything (in case the outage
outlasted the leases: every live node must renew its own before any takes another's over).
systemd's watchdog hears the node is unwell only once the outage outlasts `[store]
outage_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from runwatchd.errors import StoreUnavailable

log = logging.getLogger(__name__)

PROBE_EVERY = 1.0


class StoreOutage:
    """Whether the store is reachable, as any thread last found; its lock guards the times."""

    def __init__(self, *, grace: float, settle: float, probe: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._grace = grace
        self._settle = settle
        self._probe = probe
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._hold_until = 0.0
        self._next_probe = 0.0
        self._told_watchdog = False

    def lost(self, error: StoreUnavailable) -> None:
        """A store call failed for want of the store (any thread)."""
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = self._clock()
                self._next_probe = self._down_since + PROBE_EVERY
        if first:
            log.error("%s: taking no new work until it is back (in-flight work finishes and is "
                      "recorded then)", error)

    @property
    def down(self) -> bool:
        with self._lock:
            return self._down_since is not None

    def holding(self) -> bool:
        """True while no new work may be claimed: down, or just back."""
        with self._lock:
            return self._down_since is not None or self._clock() < self._hold_until

    def unwell(self) -> str | None:
        """Why the watchdog should hear the node is unwell (the outage outlasted the grace)."""
        with self._lock:
            since = self._down_since
        if since is None or self._clock() - since <= self._grace:
            return None
        if not self._told_watchdog:
            self._told_watchdog = True
            log.error("the store has been unreachable for over %.0f s ([store] outage_seconds): "
                      "no more watchdog pings", self._grace)
        return f"store unreachable for {self._clock() - since:.0f} s"

    def tick(self) -> None:
        """The main loop's turn: while down, probe the store once a second."""
        with self._lock:
            if self._down_since is None or self._clock() < self._next_probe:
                return
            self._next_probe = self._clock() + PROBE_EVERY
        try:
            self._probe()
        except StoreUnavailable:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            now = self._clock()
            self._hold_until = now + self._settle
            self._told_watchdog = False
        log.info("the store is reachable again after %.0f s; new work resumes in %.0f s",
                 now - (since or now), self._settle)
