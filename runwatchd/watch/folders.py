"""One watched folder at run time: its filter, observer, rules, and the checks that keep it honest.

A folder is "watching", or "unavailable" when its mount is gone (path missing, stale handle,
suddenly empty where it had files). An unavailable folder pauses quietly (one message) instead of
flooding errors, and resumes by itself with a rescan when it comes back. A dead observer is
restarted and followed by a rescan, since events were lost while it was down.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runwatchd.config.load import FolderConfig
from runwatchd.generation.rules_files import RuleResolver
from runwatchd.watch import skips
from runwatchd.watch.mounts import (
    NETWORK_FS,
    choose_observer,
    count_dirs,
    fs_type,
    inotify_watch_limit,
)
from runwatchd.watch.observers import FolderWatcher
from runwatchd.watch.scan import FileFilter, scan_tree
from runwatchd.watch.skips import SkipLog

log = logging.getLogger(__name__)

# The longest wait before a vanished folder or mount is noticed (shorter when polling faster).
MOUNT_CHECK_INTERVAL = 5.0
# NFS clients cache attributes for up to 60 s (acregmax): a shorter settle time can see a file
# as unchanged while the server already has more bytes.
NFS_ATTR_CACHE = 60.0


class Folder:
    """A configured folder and everything that watches it."""

    def __init__(
        self,
        config: FolderConfig,
        *,
        on_candidate: Callable[[Path, "Folder", bool], None],
        on_dir: Callable[["Folder", Path], None],
        is_own_output: Callable[[Path], bool],
        skips: SkipLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.root = config.path
        self.settings = config.settings
        self.resolver = RuleResolver(self.root, config.rule, [(self.root, config.recursive)])
        exclude = [config.rule.output_path(self.root)] if config.rule else []
        self.filter = FileFilter(self.root, self.settings.include, self.settings.ignore,
                                 exclude_dirs=exclude)
        self.kind = "none"
        self.state = "idle"
        self._on_candidate = on_candidate
        self._on_dir = on_dir
        self._is_own_output = is_own_output
        self._skips = skips
        self._clock = clock
        self._watcher: FolderWatcher | None = None
        self._watching_wanted = False
        self._next_rescan = clock() + self.settings.rescan_interval
        self._rescan_soon = False
        self._mount_check_interval = min(MOUNT_CHECK_INTERVAL, self.settings.poll_interval)
        self._next_mount_check = clock() + self._mount_check_interval
        self._had_files = False
        self._dev: int | None = None  # st_dev of the root while watched: a mount change shows here
        self._network = False

    # -- filtering -----------------------------------------------------------------------------

    def contains(self, path: Path) -> bool:
        return self.config.contains(path)

    def wants(self, path: Path) -> bool:
        return (self.filter.wants(path) and self._dir_wanted_for(path)
                and not self._is_own_output(path))

    def _dir_wanted_for(self, path: Path) -> bool:
        """The part of wants() that depends only on the file's directory."""
        if not self.contains(path):
            return False
        rule = self.resolver.rule_for(path)
        # Outputs of a rules file's rule live under its own output_dir: never feed them back.
        return rule is None or rule.output_path(self.root) not in path.parents

    def refusal(self, path: Path) -> tuple[str, str] | None:
        """Why a file in this folder that wants() refuses is not taken (None: it is wanted, or
        not worth a line); see watch/skips.py."""
        if not self.contains(path):
            return None
        why = self.filter.refusal(path)
        if why is None and self.filter.wants(path) and not self.wants(path):
            why = skips.RULE_OUTPUT, "output of a rule"
        return why

    def _refused(self, path: Path, st: os.stat_result | None = None) -> None:
        if self._skips is None:
            return
        why = self.refusal(path)
        if why is None:
            return
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                return  # gone already: a temp file after all
        if stat.S_ISREG(st.st_mode):
            self._skips.report(path, why[0], why[1], st)

    def _refused_entry(self, path: Path, entry: os.DirEntry[str]) -> None:
        if self._skips is not None:
            try:
                st = entry.stat()
            except OSError:
                return
            self._refused(path, st)

    def scan(self, top: Path | None = None) -> Iterator[tuple[Path, os.stat_result]]:
        if self._probe()[0] is not None:
            return
        # scan_tree applied the filter already; the rest of wants() is asked once per directory:
        # asked per file (a rules-file stat per directory level each time) it was most of a
        # restart over 100,000 files (benchmarks/, case 4).
        dir_ok: dict[Path, bool] = {}
        refused = self._refused_entry if self._skips is not None else None
        for path, st in scan_tree(top or self.root, self.config.recursive, self.filter,
                                  refused):
            self._had_files = True
            ok = dir_ok.get(path.parent)
            if ok is None:
                ok = dir_ok[path.parent] = self._dir_wanted_for(path)
            if ok and not self._is_own_output(path):
                yield path, st
            elif self._skips is not None:
                self._skips.report(path, skips.RULE_OUTPUT, "output of a rule", st)

    # -- watching ------------------------------------------------------------------------------

    def start_watching(self) -> None:
        self._watching_wanted = True
        why, dev = self._probe()
        if why is not None:
            self._set_unavailable(why)
            return
        self.kind = self._choose_kind()
        try:
            self._watcher = self._new_watcher(self.kind)
        except OSError as e:
            if self.kind == "inotify" and e.errno in (errno.ENOSPC, errno.EMFILE):
                log.warning("%s: %s; polling it instead", self.root, e.strerror)
                self.kind = "polling"
                try:
                    self._watcher = self._new_watcher(self.kind)
                except OSError as e2:
                    self._set_unavailable(f"cannot watch it ({e2.strerror or e2})")
                    return
            else:
                self._set_unavailable(f"cannot watch it ({e.strerror or e})")
                return
        self._dev = dev
        self.state = "watching"
        log.info("watching %s (%s, settle %.1f s)", self.root, self.kind,
                 self.settings.settle_seconds)

    def stop_watching(self) -> None:
        self._watching_wanted = False
        self._stop_watcher()
        self.state = "idle"

    def _new_watcher(self, kind: str) -> FolderWatcher:
        watcher = FolderWatcher(
            self.root, recursive=self.config.recursive, kind=kind,
            poll_interval=self.settings.poll_interval, on_path=self._event,
            on_overflow=self.rescan_soon, on_dir=self._dir_event,
        )
        watcher.start()  # raises OSError (folder gone meanwhile, watch limits)
        return watcher

    def _stop_watcher(self) -> None:
        if self._watcher is not None:
            try:
                self._watcher.stop()
                self._watcher.join(5.0)
            except Exception:  # noqa: BLE001 - a watcher on a vanished mount may fail to stop
                log.debug("stopping the observer of %s failed", self.root, exc_info=True)
            self._watcher = None

    def _choose_kind(self) -> str:
        kind = choose_observer(self.root, self.settings.observer)
        fstype = fs_type(self.root)
        self._network = fstype in NETWORK_FS
        if fstype.startswith("nfs") and self.settings.settle_seconds < NFS_ATTR_CACHE:
            log.warning("%s is on NFS: settle_seconds %.1f is shorter than the attribute cache "
                        "(up to %.0f s); raise it or mount with actimeo=1",
                        self.root, self.settings.settle_seconds, NFS_ATTR_CACHE)
        if kind == "inotify" and self.config.recursive:
            limit = inotify_watch_limit()
            if limit is not None:
                dirs = count_dirs(self.root, True, limit)
                if dirs >= limit:
                    log.warning("%s has %d+ directories, more than the inotify watch limit (%d); "
                                "polling it instead. Raise the limit with: sudo sysctl "
                                "fs.inotify.max_user_watches=%d", self.root, dirs, limit,
                                max(limit * 2, 524288))
                    kind = "polling"
        return kind

    def _event(self, path: Path, closed: bool) -> None:
        if self.state != "watching":
            return
        if self.wants(path):
            self._on_candidate(path, self, closed)  # the daemon logs "detected" once per file
        else:
            self._refused(path)  # one line per file version, with the reason

    def _dir_event(self, path: Path) -> None:
        if self.state == "watching" and self.filter.wants_dir(path):
            self._on_dir(self, path)

    def rescan_soon(self) -> None:
        self._rescan_soon = True

    # -- periodic checks -----------------------------------------------------------------------

    def tick(self, now: float, rescan: Callable[[], None]) -> None:
        """Called by the main loop: mount checks, observer health, periodic reconcile scan."""
        if not self._watching_wanted:
            if self._rescan_soon:
                self._rescan_soon = False
                rescan()
            return
        dead = self.state == "watching" and (self._watcher is None
                                              or not self._watcher.is_alive())
        if now >= self._next_mount_check or dead:
            # A dead observer is checked against the mount first: an emitter stops by itself when
            # its folder is deleted or unmounted, and that is a pause, not a crash.
            self._next_mount_check = now + self._mount_check_interval
            why, dev = self._probe()
            if why is not None:
                if self.state != "unavailable":
                    self._stop_watcher()
                    self._set_unavailable(why)
                return
            if self.state == "unavailable":
                log.warning("%s is available; resuming with a rescan", self.root)
                self._restart()
            elif dev != self._dev:
                log.warning("the mount under %s changed; watching it again and rescanning",
                            self.root)
                self._restart()
            elif dead:
                log.error("the observer of %s died; restarting it and rescanning", self.root)
                self._restart()
        if self.state != "watching":
            return
        periodic = self.settings.rescan_interval > 0  # 0 turns the reconcile scan off
        if self._rescan_soon or (periodic and now >= self._next_rescan):
            self._rescan_soon = False
            self._next_rescan = now + self.settings.rescan_interval
            rescan()

    def healthy(self) -> bool:
        if self.state != "watching":
            return True  # paused for a missing mount is a known, reported state, not a hang
        return self._watcher is not None and self._watcher.is_alive()

    def _restart(self) -> None:
        self._stop_watcher()
        self.start_watching()
        self._rescan_soon = True

    def _probe(self) -> tuple[str | None, int | None]:
        """(why the folder is unavailable or None, its st_dev): missing, unreachable (ESTALE,
        EIO, ENOTCONN), or suddenly empty where it had files, on a network share or after its
        mount changed. An emptied local folder is normal (files get moved on), not a lost mount."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return "the folder does not exist (not yet, renamed, or its mount is gone)", None
        except OSError as e:
            return f"cannot reach the folder ({e.strerror or e})", None
        if not stat.S_ISDIR(st.st_mode):
            return "the path is no longer a directory", None
        moved = self._dev is not None and st.st_dev != self._dev
        if self._had_files and (moved or self._network):
            try:
                with os.scandir(self.root) as it:
                    empty = next(it, None) is None
            except OSError as e:
                return f"cannot list the folder ({e.strerror or e})", None
            if empty:
                # A NAS mount point left behind by an unmount is an empty directory.
                return "the folder is suddenly empty where it had files (mount gone?)", None
        return None, st.st_dev

    def _set_unavailable(self, why: str) -> None:
        if self.state != "unavailable":
            log.warning("%s: %s; pausing this folder until it is back", self.root, why)
        self.state = "unavailable"
        self.kind = "none"
