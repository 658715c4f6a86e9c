"""check-config's look at rules files: every `runwatchd.rules.toml` under every configured
folder, or one given with --rules, checked as the daemon will check it.

The walk goes where the daemon looks: below each folder (only its top when not recursive),
never into a directory the folder ignores or a rule's output folder, never through a symlinked
directory (no loops), and it gives up after MAX_DIRS directories with a note rather than
crawling a whole NAS. Each rules file goes through the folder's own RuleResolver.check, so a
problem reads exactly as in the daemon's log (line and column for bad TOML, the key path and a
did-you-mean for a typo).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from runwatchd.config.load import Config, FolderConfig
from runwatchd.generation.rules import RULES_FILENAME
from runwatchd.generation.rules_files import RuleResolver
from runwatchd.watch.scan import FileFilter

# Directories visited per folder before the walk stops (with a note on stderr).
MAX_DIRS = 10_000


def _directories(folder: FolderConfig, filt: FileFilter, limit: int) -> Iterator[Path | None]:
    """The directories where a rules file of `folder` may lie; None once `limit` is reached."""
    top = os.path.abspath(folder.path)
    if not filt.wants_dir(Path(top)):
        return
    stack, seen = [top], 0
    while stack:
        if seen >= limit:
            yield None
            return
        directory = stack.pop()
        seen += 1
        yield Path(directory)
        if not folder.recursive:
            continue
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            continue  # unreadable or gone: the daemon cannot see files there either
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir and filt.wants_dir(Path(entry.path)):
                stack.append(entry.path)


def folder_problems(folder: FolderConfig, limit: int = MAX_DIRS) -> tuple[list[str], str | None]:
    """(every problem as `<path>: problem`, a note when the walk stopped early) for the rules
    files under one folder."""
    resolver = RuleResolver(folder.path, folder.rule, [(folder.path, folder.recursive)])
    exclude = [folder.rule.output_path(folder.path)] if folder.rule else []
    filt = FileFilter(folder.path, folder.settings.include, folder.settings.ignore,
                      exclude_dirs=exclude)
    problems: list[str] = []
    for directory in _directories(folder, filt, limit):
        if directory is None:
            return problems, (f"{folder.path}: stopped looking for rules files after {limit} "
                              "directories")
        path = directory / RULES_FILENAME
        try:
            os.lstat(path)
        except OSError:
            continue
        problems += [f"{path}: {p}" for p in resolver.check(path)[1]]
    return problems, None


def config_problems(cfg: Config, limit: int = MAX_DIRS) -> tuple[list[str], list[str]]:
    """(problems, notes) of the rules files under every folder of `cfg`."""
    problems: list[str] = []
    notes: list[str] = []
    for folder in cfg.folders:
        found, note = folder_problems(folder, limit)
        problems += found
        notes += [note] if note else []
    return problems, notes


def file_problems(path: Path) -> list[str]:
    """The problems of one rules file on its own, as `<path>: problem`. No config is read, so
    where its output_dir lies among the watched folders is checked only by a full check-config
    (it is taken as the rules file's own folder, watched recursively)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return [f"{path}: cannot read ({e.strerror})"]
    if stat.S_ISDIR(st.st_mode):
        return [f"{path}: a directory, not a rules file"]
    resolver = RuleResolver(Path(os.path.abspath(path)).parent, None)
    return [f"{path}: {p}" for p in resolver.check(path)[1]]
