"""Files on disk: atomic writes (temp name, fsync, rename, directory fsync), our temp names, and
safe whole reads of small files."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

# Every temp file the daemon writes contains this mark, so watchers can ignore them.
TEMP_MARK = ".runwatchd-tmp"

_NAME_MAX = 255  # bytes, for the usual Linux filesystems (ext4, xfs, btrfs, nfs, cifs)


def temp_path_for(final: Path) -> Path:
    """A fresh temp path beside `final`: `.<name>.runwatchd-tmp-<hex>`, shortened to fit NAME_MAX."""
    tail = f"{TEMP_MARK}-{secrets.token_hex(6)}"
    budget = _NAME_MAX - 1 - len(tail.encode())
    head = os.fsencode(final.name)[:budget]
    # Cutting bytes may split a multi-byte character; fsdecode keeps the rest as surrogates.
    return final.with_name(f".{os.fsdecode(head)}{tail}")


def atomic_write_bytes(final: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `final` with `data` so a reader sees the old file or the new one, never a part."""
    with atomic_writer(final, mode=mode) as f:
        f.write(data)


@contextmanager
def atomic_writer(final: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a temp file beside `final`; on a clean exit fsync it, rename it over `final` and
    fsync the directory. On any error the temp file is removed and `final` is left untouched.

    `mode` is subject to the umask, like any file the user's processes create.
    """
    temp = temp_path_for(final)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(final.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable; filesystems that cannot fsync a directory are ignored."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        log.debug("cannot open %s to fsync it: %s", directory, e)
        return
    try:
        os.fsync(fd)
    except OSError as e:
        # Some network filesystems answer EINVAL; the rename itself already happened.
        log.debug("cannot fsync directory %s: %s", directory, e)
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """True for names temp_path_for makes."""
    return name.startswith(".") and TEMP_MARK in name


def read_small_file(path: Path, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The whole content of a small regular file, read without ever blocking or filling memory.

    A FIFO, socket or device in its place is refused without waiting for a writer (O_NONBLOCK,
    then fstat: a FIFO named like a sidecar once blocked the catch-up scan for ever); a file
    larger than `limit` bytes is refused after reading at most limit + 1 bytes (a 3 GB sparse
    rules file was read whole). With follow_symlinks=False a symlink is refused (O_NOFOLLOW).
    Failures are OSError with a strerror meant for a person."""
    return read_small_file_and_stat(path, limit, follow_symlinks=follow_symlinks)[0]


def read_small_file_and_stat(path: Path, limit: int, *, follow_symlinks: bool = True
                             ) -> tuple[bytes, os.stat_result]:
    """read_small_file(), with the stat of the very file that was read (not of whatever the
    path names a moment later)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise OSError(errno.ELOOP, "is a symbolic link", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:  # os.read, not a file object: this runs once per sidecar at a scan
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data, st
