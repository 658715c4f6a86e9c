"""Files the page may send: media thumbnails and generation outputs, never anything else.

A file is sent only when (1) the server found it through a store row named by an opaque id,
(2) its real path (symlinks resolved) lies inside a watched folder or the row's own output
folder, (3) it is a regular file, and for thumbnails (4) it is an image by its extension and by
its first bytes, and small. Every reply carries the content type runwatchd chose, never one the
browser guesses (the server sends nosniff), and media plays in a sandbox.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from runwatchd.runway.media import MEDIA_TYPES
from runwatchd.service.web.view import IMAGE_TYPES

THUMB_MAX_BYTES = 8 * 1024 * 1024
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class FileReply:
    """An open file to send: the whole of it, or one byte range."""

    handle: BinaryIO
    content_type: str
    size: int
    name: str
    start: int = 0
    length: int = 0
    partial: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def inside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether `path` (already resolved) is one of `roots` (resolved here) or below one."""
    for root in roots:
        try:
            real_root = root.resolve()
        except (OSError, RuntimeError):
            continue
        if path == real_root or real_root in path.parents:
            return True
    return False


def open_file(path: Path, roots: Iterable[Path], *, thumbnail: bool = False) -> FileReply | None:
    """`path` opened for sending, or None when it may not be sent (or is gone)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not inside(real, roots):
        return None
    suffix = real.suffix.lower()
    content_type = IMAGE_TYPES.get(suffix) if thumbnail else (
        MEDIA_TYPES.get(suffix) or IMAGE_TYPES.get(suffix))
    try:
        # O_NONBLOCK: a FIFO planted in a folder must not hang the request on open.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    handle = os.fdopen(fd, "rb")
    try:
        st = os.fstat(handle.fileno())
        ok = stat.S_ISREG(st.st_mode)
        if ok and thumbnail:
            ok = content_type is not None and st.st_size <= THUMB_MAX_BYTES and _looks_like(
                handle, content_type)
        if not ok:
            handle.close()
            return None
    except OSError:
        handle.close()
        return None
    return FileReply(handle, content_type or "application/octet-stream", st.st_size, real.name,
                     length=st.st_size)


def disposition(reply: FileReply) -> str:
    """Inline for media a browser shows, a download for anything else."""
    kind = "inline" if reply.content_type.startswith(("image/", "video/", "audio/")) else (
        "attachment")
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", reply.name) or "file"
    utf8 = quote(os.fsencode(reply.name), safe="")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8}"


def apply_range(reply: FileReply, header: str | None) -> bool:
    """Narrow `reply` to the one byte range `header` asks for (videos seek with them); False
    when the range cannot be satisfied. Several ranges are answered with the whole file."""
    if not header:
        return True
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return True
    first, last = match.groups()
    size = reply.size
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    elif last:
        start, end = max(0, size - int(last)), size - 1
    else:
        return True
    if start >= size or end < start:
        return False
    reply.start, reply.length, reply.partial = start, end - start + 1, True
    reply.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return True


def _looks_like(handle: BinaryIO, content_type: str) -> bool:
    head = handle.read(16)
    handle.seek(0)
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return any(head.startswith(magic) for magic in _MAGIC.get(content_type, ()))
