"""Atomic file writes (temp name, fsync, rename, directory fsync) and cleanup of their temps."""

from __future__ import annotations

import logging
import os
import secrets
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
