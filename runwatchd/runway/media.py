"""Local checks a media file must pass before any network call, and the media kinds Runway takes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runwatchd import errors

MIN_SIZE = 512
MAX_SIZE = 200 * 1024 * 1024

MEDIA_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
}

_MIB = 1024 * 1024

_NOT_REGULAR = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def media_kind(path: Path) -> str | None:
    """Return "image", "video" or "audio" for a supported extension (any case), else None."""
    content_type = MEDIA_TYPES.get(path.suffix.lower())
    return content_type.split("/", 1)[0] if content_type else None


def check_file(path: Path) -> os.stat_result:
    """Prove `path` is a readable regular media file of an acceptable size; return its stat.

    Raises errors.InvalidFile with one line naming the file. The type is checked with os.stat
    (which follows symlinks) before any open, so a FIFO is rejected without ever blocking.
    """
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in MEDIA_TYPES:
        shown = f"'{path.suffix}'" if path.suffix else "(no extension)"
        raise errors.InvalidFile(
            f"{name}: unsupported file type {shown} (supported: {', '.join(MEDIA_TYPES)})"
        )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        broken = " (broken symlink)" if path.is_symlink() else ""
        raise errors.InvalidFile(f"{name}: no such file{broken}") from None
    except OSError as e:
        raise errors.InvalidFile(f"{name}: cannot read ({e.strerror or e})") from None
    _check_regular(name, st)
    _check_size(name, st.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errors.InvalidFile(f"{name}: no such file") from None
    except OSError as e:
        raise errors.InvalidFile(f"{name}: cannot read ({e.strerror or e})") from None
    try:
        opened = os.fstat(fd)
    finally:
        os.close(fd)
    # The path may have been swapped between stat and open; judge what was actually opened.
    _check_regular(name, opened)
    _check_size(name, opened.st_size)
    return opened


def _check_regular(name: str, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((label for test, label in _NOT_REGULAR if test(st.st_mode)), "special file")
    raise errors.InvalidFile(f"{name}: not a regular file ({kind})")


def _check_size(name: str, size: int) -> None:
    if size < MIN_SIZE:
        unit = "byte" if size == 1 else "bytes"
        raise errors.InvalidFile(
            f"{name}: {size} {unit} is below Runway's minimum of {MIN_SIZE} bytes"
        )
    if size > MAX_SIZE:
        raise errors.InvalidFile(
            f"{name}: {size / _MIB:.1f} MiB ({size} bytes) is above Runway's maximum of "
            f"{MAX_SIZE // _MIB} MiB ({MAX_SIZE} bytes)"
        )
