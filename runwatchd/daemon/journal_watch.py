"""The daemon's check that its journal is still the file at its path.

Deleting or replacing `journal.sqlite3` under a running daemon (a clean-up script, a restore from
backup) leaves it writing to an unlinked file: every upload and task it records from then on is
lost to the next start, which could submit those generations again. So the main loop asks the
store once a second (an os.stat, no I/O on the database) and, when the file is gone or another,
the daemon stops taking work and exits 1 after one ERROR line. Exit 1 on purpose: the systemd
unit restarts on failure (but not on 2 or 78), and the restarted daemon opens the journal anew and
adopts every file from its sidecar (the user-facing truth), so no generation is sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from runwatchd.store.base import Store

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between two checks


class JournalWatch:
    """Tells the main loop, once, that the journal it writes is no longer the one on disk."""

    def __init__(self, journal: Store, clock: Callable[[], float]) -> None:
        self._journal = journal
        self._clock = clock
        self._next = 0.0
        self.lost: str | None = None

    def check(self) -> bool:
        """True (and the ERROR line, once) when the journal was deleted or replaced."""
        if self.lost is not None:
            return True
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + CHECK_INTERVAL
        what = self._journal.check_intact()
        if what is None:
            return False
        self.lost = what
        log.error("%s while the daemon ran; stopping so nothing more is recorded in a file that "
                  "is gone: restart runwatchd (systemd does, after this exit 1) to open a fresh "
                  "journal (files are adopted from their sidecars)", what)
        return True
