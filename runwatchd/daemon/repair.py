"""Repairing what a stopped process left: this host's last crash at start-up, and a dead node's
(or a killed scan's) work while running.

At start-up only the store's owner repairs (one daemon per store on a host, per node name on a
shared store): `scan` or `retry` beside a running daemon must leave that daemon's work alone.
It repairs the orphans only, the rows in progress that no live holder leases, so a daemon that
starts beside the living nodes of a cluster touches none of their work. While it runs, every
heartbeat's orphans (WorkClaims.tick) are repaired the same way and their unfinished uploads
queued here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from runwatchd.daemon.claims import WorkClaims
from runwatchd.daemon.folder_set import FolderSet
from runwatchd.daemon.policy import RunPolicy, Scope
from runwatchd.lifecycle.processor import FileProcessor
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

# In a cluster a temp file's pid may be another host's process: only temps this old are removed
# (a sidecar or download temp lives seconds to minutes).
CLUSTER_TEMP_AGE = 3600.0


class Repairs:
    """Start-up recovery and the take-over of orphans, for one daemon."""

    def __init__(self, store: Store, processor: FileProcessor, folders: FolderSet,
                 claims: WorkClaims, *, policy: RunPolicy, scope: Scope,
                 look_at: Callable[[Path], bool], own_status: Callable[[], None]) -> None:
        self._store = store
        self._processor = processor
        self._folders = folders
        self._claims = claims
        self._policy = policy
        self._scope = scope
        self._look_at = look_at
        self._own_status = own_status

    def at_startup(self) -> None:
        """Repair what a crash left (FileProcessor.recover), if this process owns the store."""
        if not self._store.take_ownership():
            log.info("another runwatchd process works on this state directory; leaving its "
                     "work in progress alone")
            return
        self._own_status()
        self._claims.beat()
        others = any(h.alive and h.holder != self._store.holder for h in self._store.holders())
        orphans = self._claims.take_orphans()
        self._processor.recover(
            self._watched(orphans) if others else orphans, self._output_dir_for,
            roots=[f.root for f in self._folders],
            in_scope=self._in_scope if self._policy.recover_only_in_scope else None,
            sweep_min_age=CLUSTER_TEMP_AGE if others else 0.0)

    def take_over(self, orphans: list[FileRecord]) -> None:
        """Repair rows a dead holder left while this daemon runs; look at its uploads again."""
        for path in self._processor.take_over(self._watched(orphans), self._output_dir_for):
            self._look_at(path)

    def _watched(self, orphans: list[FileRecord]) -> list[FileRecord]:
        """The orphans in folders this node watches; the others' leases are given up at once
        (a node that watches their folder takes them: this one may not even mount it). A single
        host repairs all of its own at start-up, watched or not, as it always did."""
        mine = []
        for record in orphans:
            if self._folders.folder_for(Path(record.path)) is not None:
                mine.append(record)
            else:
                self._claims.done(Path(record.path), keep=False)
        return mine

    def _in_scope(self, path: Path) -> bool:
        folder = self._folders.folder_for(path)
        return folder is not None and self._scope.covers(folder.root, path)

    def _output_dir_for(self, path: Path) -> Path:
        folder = self._folders.folder_for(path)
        rule = folder.resolver.rule_for(path) if folder else None
        return rule.output_path(folder.root) if rule and folder else path.parent
