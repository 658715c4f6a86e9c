"""Scan: which files a folder wants (`FileFilter`) and how to find the ones already there.

Matching is on names, case-insensitive, at any depth: watchdog 7's `PurePath.full_match`
patterns miss files in subfolders, and its PatternMatchingEventHandler drops rsync's final
rename when dotfiles are ignored, so the watcher reports every path and this filter decides.
Built-in ignores cover temp files of rsync, browsers, Office and NFS, NAS metadata folders,
and runwatchd's own sidecars and temp files.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from runwatchd.fsutil import TEMP_MARK
from runwatchd.watch.skips import IGNORED, NOT_INCLUDED, RULE_OUTPUT

log = logging.getLogger(__name__)


BUILTIN_IGNORE: tuple[str, ...] = (
    ".*",  # dotfiles: rsync temps (".clip.mov.AbC123"), ".nfs*" silly renames, "._*" AppleDouble
    "*.part", "*.partial", "*.crdownload", "*.tmp", "~$*",
    ".nfs*", "._*", ".DS_Store", "Thumbs.db",
    "@eaDir", "#recycle", ".snapshot",  # Synology / NetApp metadata folders
    "*.runway.json", "*.prompt.txt", "runwatchd.rules.toml",  # our own sidecars and inputs
    f"*{TEMP_MARK}*",
)


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


def _under(path: str, dirs: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


class FileFilter:
    """Which paths below `root` a folder wants. Matching is case-insensitive, on names only."""

    def __init__(
        self,
        root: Path,
        include: Sequence[str],
        ignore: Sequence[str] = (),
        exclude_dirs: Sequence[Path] = (),
    ) -> None:
        self.root = Path(root)
        self._root = os.path.abspath(root)
        self._include = _compile(include)
        self._ignore = _compile((*BUILTIN_IGNORE, *ignore))
        self._builtin = _compile(BUILTIN_IGNORE)
        self._user_ignore = tuple((p, _compile([p])) for p in ignore)
        excluded: set[str] = set()
        for d in exclude_dirs:
            excluded.add(os.path.abspath(d))
            excluded.add(os.path.realpath(d))  # a symlinked output dir is excluded either way
        self._exclude = tuple(sorted(excluded))

    def wants(self, path: Path) -> bool:
        """A file: include matches its name, no component below root is ignored, not an output."""
        parts = self._parts(path)
        if not parts:
            return False
        return self._name_wanted(parts[-1]) and self._dirs_wanted(parts[:-1], path)

    def wants_dir(self, path: Path) -> bool:
        """A directory worth descending into (root itself always is)."""
        parts = self._parts(path)
        if parts is None:
            return False
        return self._dirs_wanted(parts, path)

    def refusal(self, path: Path) -> tuple[str, str] | None:
        """Why a file below root is not wanted, as (reason token, words), for the one line that
        tells the user (watch/skips.py); None when it is wanted, outside root, or matches a
        built-in ignore (temp files and runwatchd's own: not worth a line)."""
        parts = self._parts(path)
        if not parts or (self._builtin is not None
                         and any(self._builtin.match(p) for p in parts)):
            return None
        for part in parts:
            for pattern, rx in self._user_ignore:
                if rx is not None and rx.match(part):
                    return IGNORED, f"ignored name (matches ignore pattern {pattern!r})"
        if self._exclude and _under(os.path.abspath(path), self._exclude):
            return RULE_OUTPUT, "output of a rule (its output folder is not watched)"
        if self._include is None or self._include.match(parts[-1]) is None:
            suffix = os.path.splitext(parts[-1])[1].lower() or "no extension"
            return NOT_INCLUDED, f"type not included ({suffix} matches no include pattern)"
        return None

    def silently_ignored(self, name: str) -> bool:
        """A name the built-in ignore list matches (temp files, runwatchd's own files): refused
        without a word."""
        return self._builtin is not None and self._builtin.match(name) is not None

    def _name_wanted(self, name: str) -> bool:
        if self._ignore is not None and self._ignore.match(name):
            return False
        return self._include is not None and self._include.match(name) is not None

    def _dir_name_wanted(self, name: str) -> bool:
        return self._ignore is None or self._ignore.match(name) is None

    def _dirs_wanted(self, parts: Sequence[str], path: Path) -> bool:
        if not all(self._dir_name_wanted(p) for p in parts):
            return False
        return not (self._exclude and _under(os.path.abspath(path), self._exclude))

    def _parts(self, path: Path) -> list[str] | None:
        """Components below root ([] for root itself), None when outside root."""
        p = os.path.abspath(path)
        if p == self._root:
            return []
        prefix = self._root if self._root.endswith(os.sep) else self._root + os.sep
        if not p.startswith(prefix):
            return None
        return p[len(prefix):].split(os.sep)


def scan_tree(
    root: Path, recursive: bool, filt: FileFilter,
    on_refused: Callable[[Path, os.DirEntry[str]], None] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files below `root` that `filt` wants, with their stat (file symlinks followed);
    `on_refused` is handed every file whose name it does not want (pruned folders are not read).

    Never follows directory symlinks (no loops), prunes ignored and excluded directories, and
    skips what cannot be read with one warning per directory. Never raises: a missing root is
    a warning and an empty scan.
    """
    top = os.path.abspath(root)  # exclude_dirs are absolute
    if not filt.wants_dir(Path(top)):
        return
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            # A subfolder deleted mid-scan is routine; a missing top or unreadable folder is not.
            vanished = isinstance(e, (FileNotFoundError, NotADirectoryError)) and directory != top
            (log.debug if vanished else log.warning)("cannot scan %s: %s", directory,
                                                     e.strerror or e)
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                # Parent components were checked on the way down: only this name can be ignored.
                if recursive and filt._dir_name_wanted(entry.name) and (
                    not filt._exclude or not _under(entry.path, filt._exclude)
                ):
                    stack.append(entry.path)
                continue
            if not filt._name_wanted(entry.name):
                # Our own sidecars and temps (built-in ignores) are refused silently, without a
                # Path or a stat each: a folder of 100,000 done files holds 100,000 sidecars.
                if on_refused is not None and not filt.silently_ignored(entry.name):
                    on_refused(Path(entry.path), entry)
                continue
            try:
                st = entry.stat()  # follows a symlink to a file
            except OSError as e:
                log.debug("skipping %s: %s", entry.path, e.strerror or e)
                continue
            if not stat.S_ISREG(st.st_mode):
                log.debug("skipping %s: not a regular file", entry.path)
                continue
            yield Path(entry.path), st
