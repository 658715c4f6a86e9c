"""The switches that hold work back for the whole daemon: a rejected API key, no credits left.

Shared by the daemon (which reports them), the processor (which stops submitting without
credits) and the task follower (which stops polling with a rejected key). A reload resumes all.
"""

from __future__ import annotations

import threading


class Pauses:
    """Key and credit pauses, safe to read and set from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_rejected: str | None = None
        self._credits = threading.Event()

    @property
    def key_rejected(self) -> str | None:
        """Why all work is paused (the API key was rejected), or None."""
        with self._lock:
            return self._key_rejected

    def reject_key(self, reason: str) -> bool:
        """Pause all work; True for the first caller (who reports it: one message, not one per
        worker that met the 401)."""
        with self._lock:
            first = self._key_rejected is None
            if first:
                self._key_rejected = reason
        return first

    @property
    def credits_out(self) -> bool:
        """Generation waits for credits (uploads go on)."""
        return self._credits.is_set()

    def run_out_of_credits(self) -> None:
        self._credits.set()

    def resume(self) -> None:
        """A reload: the key may be fixed and credits bought; try again."""
        with self._lock:
            self._key_rejected = None
        self._credits.clear()
