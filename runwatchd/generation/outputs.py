"""Where generations are downloaded to, under which names, and the folders that hold them (never
new media)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Set
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from runwatchd import errors
from runwatchd.generation.rules import Rule
from runwatchd.store.base import Store

log = logging.getLogger(__name__)


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


# Output names: the source's whole name plus the output's own extension (shot.jpg -> shot.jpg.mp4),
# then _2, _3 ... for the further outputs of one task (shot.jpg_2.mp4). Keeping the source name
# whole makes shot.jpg, shot.png and shot.webp of one folder three distinct outputs (issue 13:
# `shot.mp4` for all three overwrote each other); players, editors and ffmpeg go by the last
# suffix only, so the double extension breaks nothing, and the source stays findable by name.
MAX_NAME_TRIES = 1000
# Content types Runway's outputs come as -> the extension an output keeps.
CONTENT_TYPE_EXT = {
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm",
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
    "image/tiff": ".tiff", "image/exr": ".exr", "image/x-exr": ".exr",
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav",
    "audio/wave": ".wav", "audio/vnd.wave": ".wav", "audio/flac": ".flac", "audio/aac": ".aac",
    "audio/mp4": ".m4a", "audio/ogg": ".ogg",
    "application/zip": ".zip", "application/x-zip-compressed": ".zip",
}
# A URL's suffix is taken only when it is one of these: the URL comes from the network, and an
# output named `.exe`, `.sh` or `.runway.json` must never land in a user's folder.
KNOWN_EXTS = frozenset(CONTENT_TYPE_EXT.values()) | {".jpeg", ".tif", ".m4v", ".mkv"}
# Used when neither the content type nor the URL gives a known extension.
DEFAULT_EXT = {"text_to_image": ".png", "image_upscale": ".png", "sound_effect": ".mp3",
               "text_to_speech": ".mp3", "speech_to_speech": ".mp3", "voice_isolation": ".mp3",
               "voice_dubbing": ".mp3", "video_to_audio": ".mp3", "generate/image": ".png",
               "generate/audio": ".mp3", "recipes/marketing_stock_image": ".png",
               "recipes/product_campaign_image": ".png"}


def output_ext(content_type: str | None, url: str, endpoint: str | None) -> str:
    """The extension an output keeps: from its Content-Type, else its URL's suffix, else the
    endpoint's default (.mp4 for video endpoints). An archive (.zip) is kept as delivered, never
    unpacked: its entries are untrusted names and sizes (zip bombs, `../` paths)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in CONTENT_TYPE_EXT:
        return CONTENT_TYPE_EXT[mime]
    suffix = PurePosixPath(urlparse(url).path).suffix.lower()
    if suffix in KNOWN_EXTS:
        return suffix
    return DEFAULT_EXT.get(endpoint or "", ".mp4")


def output_name(source_name: str, n: int, ext: str) -> str:
    """The n-th (1-based) output's name for a source file named `source_name`."""
    return f"{source_name}{ext}" if n == 1 else f"{source_name}_{n}{ext}"


def free_output(directory: Path, source_name: str, first: int, ext: str,
                ours: Set[Path]) -> tuple[Path, int]:
    """(path, n): the first output name from number `first` on that is free or already ours
    (`ours`: written for this very task before, which may be replaced). A name taken by someone
    else's file is skipped, never overwritten."""
    for n in range(first, first + MAX_NAME_TRIES):
        dest = directory / output_name(source_name, n, ext)
        if dest in ours or not os.path.lexists(dest):
            if n != first:
                log.warning("%s is taken by a file runwatchd did not write; the output goes "
                            "to %s", directory / output_name(source_name, first, ext), dest.name)
            return dest, n
    raise errors.DiskFull(f"no free output name for {source_name} in {directory}")
