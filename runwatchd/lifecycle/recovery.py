"""Crash recovery at startup: repair what a killed process left, before any worker runs.

A file caught while its generation was being submitted is marked "needs attention" (a task may
exist and be billed: it is never sent again), a running task gets its sidecar back and is
followed again, and our temp files beside in-progress files and in their output folders are
removed. The daemon calls recover() only while it holds the store's owner lock.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from runwatchd import fsutil
from runwatchd.generation.submitter import FollowFn
from runwatchd.generation.task_sidecar import ensure_task_sidecar
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.failures import Failures
from runwatchd.lifecycle.states import IN_PROGRESS_STATES, FileState
from runwatchd.store.base import Store

log = logging.getLogger(__name__)


class Recovery:
    """The startup repair of what a crash left in the store and beside the files."""

    def __init__(self, store: Store, failures: Failures, *,
                 follow: FollowFn | None = None) -> None:
        self._store = store
        self._failures = failures
        self._follow = follow

    def recover(self, output_dir: Callable[[Path], Path], *,
                in_scope: Callable[[Path], bool] | None = None) -> None:
        """Repair what a crash left, before any worker or the follower runs: intents become
        "needs attention", running tasks get their sidecar and are followed again (those
        `in_scope`, if given), and our temp files beside in-progress files and in their output
        folders are removed. `output_dir(path)`: where a row that recorded none has its outputs.

        Call only while holding the store's owner lock (no other process works on it)."""
        ours: dict[Path, set[str]] = {}
        # no_sidecar: its retry writes the sidecar from the journal, and may have been killed.
        for record in self._store.in_state(*IN_PROGRESS_STATES, FileState.NO_SIDECAR):
            path = Path(record.path)
            ours.setdefault(path.parent, set()).add(sidecar.sidecar_path(path).name)
            if record.state == FileState.SUBMITTING:
                # The claim's error names the POST's send time (generation/submitter.py).
                sent = record.error or "a generation POST"
                self._failures.attention(path, record, (
                    f"the daemon stopped while {sent} was unanswered, so a task may have been "
                    f"created; check the Runway dashboard's tasks for {path.name}"))
            elif record.state == FileState.RUNNING and record.task_id:
                out = Path(record.output_dir) if record.output_dir else output_dir(path)
                ours.setdefault(out, set()).update((path.stem + ".", path.stem + "_"))
                ensure_task_sidecar(path, record)
                if self._follow and (in_scope is None or in_scope(path)):
                    self._follow(path, record.task_id, out)
        for directory, prefixes in ours.items():
            _remove_temps(directory, prefixes)


def _remove_temps(directory: Path, prefixes: set[str]) -> int:
    """Remove our temp files in `directory` whose final name starts with one of `prefixes`
    (temp_path_for may have cut a long name, so a long cut head also counts)."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not fsutil.is_temp_name(entry.name):
            continue
        head = entry.name[1:entry.name.rindex(fsutil.TEMP_MARK)]
        cut = len(os.fsencode(head)) >= 200
        if not any(head.startswith(p) or (cut and p.startswith(head)) for p in prefixes):
            continue
        try:
            os.unlink(entry.path)
        except OSError as e:
            log.warning("cannot remove temp file %s left by a crash: %s", entry.path, e)
            continue
        log.info("removed temp file %s left by a crash", entry.path)
        removed += 1
    return removed
