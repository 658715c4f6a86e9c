"""Where generations are downloaded to, and the folders that hold them (never new media)."""

from __future__ import annotations

import threading
from pathlib import Path

from runwatchd.generation.rules import Rule
from runwatchd.store.base import Store


def output_dir_for(rule: Rule, path: Path, root: Path) -> Path:
    """Where the outputs of `path` go: the rule's output_dir, mirroring the subfolders between
    the rule's base (its rules file's folder, or the watched folder) and the file, so that
    a/shot.png and b/shot.png do not both become renders/shot.mp4."""
    out = rule.output_path(root)
    try:
        rel = path.parent.relative_to(rule.base_dir or root)
    except ValueError:
        return out
    return out / rel if rel.parts else out


class OutputDirs:
    """Every folder a generation was (or is about to be) downloaded into, also those a rule no
    longer names (a rules file's output_dir was edited): files inside are ours, not new media.
    Thread-safe; read from the store on first use."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._dirs: set[Path] | None = None
        self._lock = threading.Lock()

    def contains(self, path: Path) -> bool:
        """True for a file inside one of the folders."""
        with self._lock:
            if self._dirs is None:
                self._dirs = {Path(d) for d in self._store.output_dirs()}
            # Asked for every file of every scan: with no outputs yet, skip building parents.
            return bool(self._dirs) and any(parent in self._dirs for parent in path.parents)

    def add(self, directory: Path) -> None:
        """A generation is about to be submitted with its outputs going to `directory`."""
        with self._lock:
            if self._dirs is not None:
                self._dirs.add(directory)
