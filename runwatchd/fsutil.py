"""Files on disk: atomic writes (temp name, fsync, rename, directory fsync), our temp names, and
safe whole reads of small files."""

from __future__ import annotations

import errno
import logging
import os
import re
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


# `-<pid>-<start>-<hex>` after TEMP_MARK: the process that made the temp, so a start-up can tell a
# dead process's temps from those of a live `runwatchd upload` beside it; <start> (the process's
# start time in clock ticks since boot, /proc/<pid>/stat field 22) tells a reused pid apart.
_PROC = "/proc"  # a module attribute so tests can take it away
_OWNED_TAIL = re.compile(re.escape(TEMP_MARK) + r"-(\d{1,10})-(\d{1,20})-[0-9a-f]{12}$")


def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot); None if it is gone or unknown."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            stat_line = f.read(4096)
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    fields = stat_line[stat_line.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


_this: tuple[int, int] | None = None


def _this_process() -> tuple[int, int]:
    """(pid, start time) of this process, read once per pid: every sidecar and output write
    names its temp file, and /proc/self/stat each time was a measurable part of a scan's CPU.
    Keyed by the pid, so a forked child reads its own."""
    global _this
    pid = os.getpid()
    if _this is None or _this[0] != pid:
        _this = (pid, process_start(pid) or 0)
    return _this


def temp_path_for(final: Path) -> Path:
    """A fresh temp path beside `final`: `.<name>.runwatchd-tmp-<pid>-<start>-<hex>`, shortened
    to fit NAME_MAX (the name is cut, never the owner)."""
    pid, start = _this_process()
    tail = f"{TEMP_MARK}-{pid}-{start}-{secrets.token_hex(6)}"
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
    """True for names temp_path_for makes (and made before they named their owner)."""
    return name.startswith(".") and TEMP_MARK in name


def temp_owner_and_start(name: str) -> tuple[int, int] | None:
    """(pid, start time or 0) of the process that made temp `name`; None for an old-style temp
    (no owner in its name) or a name that is not our temp."""
    if not is_temp_name(name):
        return None
    m = _OWNED_TAIL.search(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def temp_owner(name: str) -> int | None:
    """The pid of the process that made temp `name`; None when its name does not say."""
    owner = temp_owner_and_start(name)
    return owner[0] if owner else None


def temp_owner_alive(name: str) -> bool:
    """True while the runwatchd process that made temp `name` may still write it: this process,
    or a live one whose command line mentions runwatchd and (when the name recorded it) that
    started when the temp's maker did. False for an old-style temp: no live process names it
    since the pid went into the names, so only a process that died before made it."""
    owner = temp_owner_and_start(name)
    if owner is None:
        return False
    pid, start = owner
    if not os.path.exists(f"{_PROC}/self/stat"):
        # No /proc (another OS, or not mounted): all that can be told is whether the pid exists,
        # and a live process is never robbed of its temp.
        return pid_exists(pid)
    if start and process_start(pid) != start:
        return False  # gone, or the pid was reused by a newer process
    if pid == os.getpid():
        return True
    try:
        with open(f"{_PROC}/{pid}/cmdline", "rb") as f:
            cmdline = f.read(65536)
    except OSError:
        return False  # gone
    return b"runwatchd" in cmdline


def utf8_text(text: str) -> str:
    """`text` as valid UTF-8: a file name that is not UTF-8 on disk (surrogates from
    os.fsdecode) keeps its bad bytes as backslash escapes, for JSON, multipart and people."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def pid_exists(pid: object) -> bool:
    """Whether process `pid` exists (as anyone's). Only a positive int counts: kill(0) and
    kill(-1) would ask about a whole process group, and a pid comes from files others write."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process (the service user): it exists
    return True


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
