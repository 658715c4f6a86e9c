"""Scans into the candidate table: which scanned files go to settle, and which need nothing.

Every scan comes through here: the catch-up scan at startup, the periodic reconcile scan, a new
directory's scan, and the scans after a reload or an inotify overflow. A journal row describing
a file unchanged answers without reading its sidecar; the catch-up scan records files whose
sidecars already describe them in batches, instead of sending each through settle and a worker.
Mixed into daemon.Daemon.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from runwatchd.lifecycle import sidecar
from runwatchd.daemon.outcome_book import FAILURE_STATES

if TYPE_CHECKING:
    from runwatchd.daemon.core import Daemon
    from runwatchd.watch.folders import Folder
    from runwatchd.store.record import FileRecord
    from runwatchd.generation.rules import Rule

log = logging.getLogger(__name__)

# Files whose journal row is in one of these states, unchanged, need nothing at a scan.
_SETTLED_STATES = ("uploaded", "succeeded", "task_failed", "attention", "invalid", "running",
                   "submitting")


class ScanMixin:
    """The daemon's scans: _scan(), and _needs_look() for each file found."""

    def _scan(self: Daemon, folder: Folder, why: str, top: Path | None = None) -> None:
        # A whole-folder scan loads every journal signature once; a scan of one new directory
        # asks per file instead of loading the whole journal each time a directory appears.
        known = self.journal.signatures() if top is None else None
        found = queued = 0
        # Catch-up only: files the journal does not know whose sidecars already describe them are
        # recorded here, in batches, instead of each going through settle and a worker.
        adopt = why == "catch-up" and self.only is None
        adopted: list[FileRecord] = []
        recorded = 0
        rules: dict[Path, Rule | None] = {}
        tops = [top] if top is not None else self.scan_tops.get(folder.root) or [None]
        try:
            for one_top in tops:
                for path, st in folder.scan(one_top):
                    if self._stop.is_set():
                        return  # SIGTERM during a long catch-up scan: the next start scans again
                    self._keepalive()  # cheap: a clock read unless a ping is due
                    if self.only is not None and path not in self.only:
                        continue
                    found += 1
                    row = known.get(str(path)) if known is not None else (
                        self.journal.signature(path))
                    if not self._needs_look(path, st, row):
                        continue
                    if adopt and row is None:
                        if path.parent not in rules:
                            rules[path.parent] = folder.resolver.rule_for(path)
                        record = self.processor.adoptable(path, st, rules[path.parent])
                        if record is not None:
                            adopted.append(record)
                            if len(adopted) >= 1000:
                                self.journal.put_many(adopted)
                                recorded += len(adopted)
                                adopted.clear()
                            continue
                    queued += 1
                    self._candidate(path, folder)
        finally:
            if adopted:
                self.journal.put_many(adopted)
                recorded += len(adopted)
        log.info("%s scan of %s: %d file(s), %d to look at%s", why, folder.root, found, queued,
                 f", {recorded} recorded from their sidecars" if recorded else "")

    def _needs_look(self: Daemon, path: Path, st: os.stat_result, row: tuple | None) -> bool:
        """Whether a scanned file goes to the candidate table. A journal row describing the file
        unchanged answers without reading the sidecar (a rescan of 100k finished files is cheap)."""
        if self.only is not None:
            return True  # named on purpose (`runwatchd retry`): the processor decides
        if row is None or row[1:] != (st.st_size, st.st_mtime_ns, st.st_ino):
            return True
        state = row[0]
        if state == "failed" and self.mode == "run":
            record = self.journal.get(path)
            if record is not None and record.next_attempt and record.next_attempt > time.time():
                self._schedule_retry(str(path), record.next_attempt)  # its backoff stands
                return False
            return True
        if state not in _SETTLED_STATES:
            return True
        if state not in ("invalid", "running", "submitting") and not os.path.exists(
                sidecar.sidecar_path(path)):
            return True  # the sidecar was deleted: the user wants the file processed again
        if self.mode == "scan" and state in FAILURE_STATES:
            # Not retried (the file did not change), but not a success either.
            record = self.journal.get(path)
            reason = record.error if record and record.error else state
            self.failed_paths[str(path)] = f"{reason} (recorded earlier; the file did not change)"
        return False
