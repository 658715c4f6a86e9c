"""The folders a daemon watches, as one collection that a reload replaces for everyone."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from runwatchd.config.load import FolderConfig
from runwatchd.watch.folders import Folder

log = logging.getLogger(__name__)


class FolderSet:
    """The watched folders. Read from the main loop (and its scans, reload, health); a reload
    swaps the whole list at once, so a reader iterating the old list is never disturbed."""

    def __init__(self, make: Callable[[FolderConfig], Folder]) -> None:
        self._make = make
        self._folders: tuple[Folder, ...] = ()

    def __iter__(self) -> Iterator[Folder]:
        return iter(self._folders)

    def __len__(self) -> int:
        return len(self._folders)

    def __getitem__(self, index: int) -> Folder:
        return self._folders[index]

    def __contains__(self, folder: object) -> bool:
        return any(folder is f for f in self._folders)

    def folder_for(self, path: Path) -> Folder | None:
        """The most specific folder that contains `path` (nested folders: the deepest)."""
        best: Folder | None = None
        for folder in self._folders:
            if folder.contains(path) and (best is None or len(folder.root.parts) > len(
                    best.root.parts)):
                best = folder
        return best

    def replace(self, configs: Iterable[FolderConfig]) -> list[Folder]:
        """Take on `configs`: an unchanged folder is kept as it is, a removed or changed one
        stops watching. Returns the new folders (not watching yet: the caller starts and scans
        them)."""
        old = {f.root: f for f in self._folders}
        wanted = list(configs)
        kept = {fc.path for fc in wanted if fc.path in old and old[fc.path].config == fc}
        for root, folder in old.items():
            if root not in kept:
                folder.stop_watching()
                if root not in {fc.path for fc in wanted}:
                    log.info("stopped watching %s", root)
        fresh: list[Folder] = []
        folders: list[Folder] = []
        for fc in wanted:
            if fc.path in kept:
                folders.append(old[fc.path])
            else:
                folder = self._make(fc)
                fresh.append(folder)
                folders.append(folder)
        self._folders = tuple(folders)
        return fresh

    def stop_watching(self) -> None:
        for folder in self._folders:
            folder.stop_watching()
