"""What a store does with a write the lifecycle's transition table does not allow.

In production a disallowed transition is a bug in our code, but the write it rejects may record
work already done (an upload, a task id): losing it would cost more than the bug. So the store
logs one warning per (old, new) pair and writes anyway. The test suite sets strict mode
($RUNWATCHD_STRICT_TRANSITIONS=1), where the write raises TransitionError instead, so every write
the suite makes is proven allowed.
"""

from __future__ import annotations

import logging
import os
import threading

from runwatchd.lifecycle.states import TransitionError, check_transition

log = logging.getLogger(__name__)

STRICT_ENV = "RUNWATCHD_STRICT_TRANSITIONS"


def strict_from_env() -> bool:
    """Whether $RUNWATCHD_STRICT_TRANSITIONS asks for strict mode ("1", "true", "yes", "on")."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class TransitionGuard:
    """Checks each write of one store; strict raises, lenient warns once per (old, new) pair."""

    def __init__(self, strict: bool | None = None) -> None:
        self.strict = strict_from_env() if strict is None else strict
        self._warned: set[tuple[str | None, str]] = set()
        self._lock = threading.Lock()

    def check(self, old: str | None, new: str, path: str) -> None:
        """Raise TransitionError (strict) or warn once (lenient) if `old` -> `new` is not allowed.
        Call it inside the write's transaction, before writing."""
        try:
            check_transition(old, new, path)
        except TransitionError as e:
            if self.strict:
                raise
            with self._lock:
                first = (old, new) not in self._warned
                self._warned.add((old, new))
            if first:
                log.warning("%s; written anyway (a bug: please report it). Further %s -> %s "
                            "writes are not reported", e, old or "(no row)", new)
