"""The client in use, as one reference that a reload swaps for everyone who holds it.

The uploader, the submitter and the task follower each hold the same ClientRef and ask it for
`current` at the start of each piece of work; nobody assigns another object's client.
"""

from __future__ import annotations

import threading

from runwatchd.runway.client import RunwayClient


class ClientRef:
    """A swappable reference to the RunwayClient in use."""

    def __init__(self, client: RunwayClient) -> None:
        self._client = client
        self._lock = threading.Lock()

    @property
    def current(self) -> RunwayClient:
        with self._lock:
            return self._client

    def swap(self, client: RunwayClient) -> RunwayClient:
        """Make `client` the one in use; returns the one it replaced (still open: work started
        with it may be running, so its owner closes it later)."""
        with self._lock:
            old, self._client = self._client, client
        return old
