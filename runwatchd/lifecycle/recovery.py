"""Crash recovery at startup: repair what a killed process left, before any worker runs.

A file caught while its generation was being submitted is marked "needs attention" (a task may
exist and be billed: it is never sent again), a running task gets its sidecar back and is
followed again, and our temp files beside in-progress files and in their output folders are
removed. Then every runwatchd temp whose maker is no live runwatchd process (fsutil's temp names
carry the maker's pid and start time) is removed from the watched folders and every output dir
the store knows: a bounded walk that never follows a symlink, one line per file removed. The
daemon calls recover() only while it holds the store's owner lock, on the rows no live process
holds a lease on; take_over() repairs the same way what a holder that died mid-run left.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from runwatchd import fsutil
from runwatchd.generation.submitter import FollowFn
from runwatchd.generation.task_sidecar import ensure_task_sidecar
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.failures import Failures
from runwatchd.lifecycle.states import FileState
from runwatchd.store.base import Store
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)


class Recovery:
    """The startup repair of what a crash left in the store and beside the files."""

    def __init__(self, store: Store, failures: Failures, *,
                 follow: FollowFn | None = None) -> None:
        self._store = store
        self._failures = failures
        self._follow = follow

    def recover(self, orphans: Iterable[FileRecord], output_dir: Callable[[Path], Path], *,
                in_scope: Callable[[Path], bool] | None = None,
                roots: Iterable[Path] = (), sweep_min_age: float = 0.0) -> None:
        """Repair what a crash left, before any worker or the follower runs: `orphans` are the
        rows in progress no live process holds (Store.take_orphans). Intents become "needs
        attention", running tasks get their sidecar and are followed again (those `in_scope`,
        if given), and our temp files beside in-progress files and in their output folders are
        removed, then every temp of a dead process below `roots` (the watched folders) and the
        store's output dirs that is at least `sweep_min_age` seconds old (sweep_dead_temps:
        other hosts' pids cannot be checked from here, so a cluster sweeps only old ones).
        `output_dir(path)`: where a row that recorded none has its outputs.

        Call only while holding the store's owner lock (no other process of this host works on
        it as a daemon)."""
        for directory, prefixes in self._repair(orphans, output_dir, in_scope).items():
            _remove_temps(directory, prefixes)
        sweep_dead_temps([*roots, *(Path(d) for d in self._store.output_dirs())],
                         min_age=sweep_min_age)

    def take_over(self, orphans: Iterable[FileRecord],
                  output_dir: Callable[[Path], Path]) -> list[Path]:
        """recover() for rows a holder that died mid-run left (another node, a killed scan),
        while this process works: the files to look at again (an upload it left unfinished)."""
        rows = list(orphans)
        for directory, prefixes in self._repair(rows, output_dir, None).items():
            _remove_temps(directory, prefixes, ours_too=False)
        return [Path(r.path) for r in rows
                if r.state in (FileState.UPLOADING, FileState.NO_SIDECAR)]

    def _repair(self, orphans: Iterable[FileRecord], output_dir: Callable[[Path], Path],
                in_scope: Callable[[Path], bool] | None) -> dict[Path, set[str]]:
        """Mark intents, follow running tasks; the temp name prefixes to remove, per folder."""
        ours: dict[Path, set[str]] = {}
        # no_sidecar: its retry writes the sidecar from the journal, and may have been killed.
        for record in orphans:
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
        return ours


# A start-up must not walk for ever: a watched folder on a NAS may hold millions of entries.
MAX_SWEEP_ENTRIES = 200_000


def sweep_dead_temps(tops: Iterable[Path], limit: int = MAX_SWEEP_ENTRIES, *,
                     min_age: float = 0.0) -> int:
    """Remove every runwatchd temp below `tops` whose maker is no live runwatchd process (never
    another name, never a live process's temp) and that is `min_age` seconds old or older,
    looking at `limit` entries at most and following no symlink; logs each file removed and the
    count. How many were removed."""
    removed, seen, done = 0, 0, set()
    oldest = time.time() - min_age
    for top in tops:
        for directory, dirs, files in os.walk(top, followlinks=False):
            if directory in done:  # an output dir inside a watched folder: once
                dirs.clear()
                continue
            done.add(directory)
            seen += len(dirs) + len(files)
            if seen > limit:
                log.warning("stopped looking for temp files left by a crash after %d entries "
                            "(at %s)", limit, directory)
                return _sweep_done(removed)
            for name in files:
                if fsutil.is_temp_name(name) and not fsutil.temp_owner_alive(name):
                    removed += _remove(os.path.join(directory, name), oldest if min_age else None)
    return _sweep_done(removed)


def _sweep_done(removed: int) -> int:
    if removed:
        log.info("removed %d temp file(s) left by stopped runwatchd processes", removed)
    return removed


def _remove(path: str, unless_after: float | None = None) -> int:
    try:
        if unless_after is not None and os.lstat(path).st_mtime > unless_after:
            return 0  # young: maybe another host's live process writes it
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.warning("cannot remove temp file %s left by a crash: %s", path, e)
        return 0
    log.info("removed temp file %s left by a stopped process", path)
    return 1


def _remove_temps(directory: Path, prefixes: set[str], *, ours_too: bool = True) -> int:
    """Remove our temp files in `directory` whose final name starts with one of `prefixes`
    (temp_path_for may have cut a long name, so a long cut head also counts), but not those of
    another live runwatchd process. This process's own count as left by the crash when
    `ours_too` (at start-up: none is written before recovery ends, and the tests crash a daemon
    inside the test process); a take-over while working keeps them."""
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
        mine = fsutil.temp_owner(entry.name) == os.getpid()
        if (mine and not ours_too) or (not mine and fsutil.temp_owner_alive(entry.name)):
            continue  # another live process writes it (`runwatchd upload` of the same file)
        try:
            os.unlink(entry.path)
        except OSError as e:
            log.warning("cannot remove temp file %s left by a crash: %s", entry.path, e)
            continue
        log.info("removed temp file %s left by a crash", entry.path)
        removed += 1
    return removed
