"""Upload (Runway client): one file's bytes to its presigned POST, streamed, hashed and counted
as they go, refused with FileChanged when the file changes under the upload.

RunwayClient.upload() checks the file, asks for the slot and retries; post_file() is the part
that moves the bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from runwatchd import errors, fsutil
from runwatchd.runway import media
from runwatchd.runway.http_errors import ErrorMapper

# httpx asks the file for 64 KiB at a time; handing it 1 MiB makes 16x fewer trips through
# httpx, h11 and the socket: a 200 MiB upload over loopback went from 1.44x to 1.14x curl's time
# (benchmarks/, case 1). Hashing on a helper thread instead was slower on 2 cores.
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Slot:
    """Where one upload goes: a presigned POST URL, its form fields, and the URI it gives."""

    upload_url: str
    fields: dict[str, str]
    runway_uri: str


def post_file(storage: httpx.Client, mapper: ErrorMapper, path: Path, f: BinaryIO,
              st: os.stat_result, slot: Slot, where: str, deadline: float,
              progress: Callable[[int], None]) -> tuple[httpx.Response, UploadReader]:
    """The presigned POST itself: the fields verbatim, then the file, streamed."""
    reader = UploadReader(f, st.st_size, deadline, path.name, progress)
    content_type = media.MEDIA_TYPES[path.suffix.lower()]
    try:
        resp = storage.post(
            slot.upload_url,
            data=slot.fields,
            files={"file": (fsutil.utf8_text(path.name), reader, content_type)},  # type: ignore[dict-item]
        )
    except httpx.HTTPError as e:
        check_unchanged(path, f, st)
        raise mapper.network_error(e, where) from e
    except errors.RunwatchdError:
        check_unchanged(path, f, st)
        raise
    return resp, reader


class UploadReader:
    """The open file as httpx sees it: keeps fileno() (so httpx sends Content-Length from
    fstat instead of chunked encoding), hashes and counts what is read, never reads past the
    size checked at the start, and enforces the attempt's overall deadline (httpx's write
    timeout is per chunk)."""

    def __init__(self, f: BinaryIO, size: int, deadline: float, name: str,
                 progress: Callable[[int], None]) -> None:
        self._f = f
        self._size = size
        self._deadline = deadline
        self._until = time.monotonic() + deadline
        self._name = name
        self._progress = progress
        self._hash = hashlib.sha256()
        self.sent = 0

    def fileno(self) -> int:
        return self._f.fileno()

    def tell(self) -> int:
        return self.sent

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # httpx seeks to 0 before streaming; a restart must restart the hash too.
        if offset != 0 or whence != os.SEEK_SET:
            raise io.UnsupportedOperation("only seek(0) is supported")
        self._f.seek(0)
        self._hash = hashlib.sha256()
        if self.sent:
            self._progress(-self.sent)
        self.sent = 0
        return 0

    def read(self, n: int = -1) -> bytes:
        if time.monotonic() >= self._until:
            raise errors.NetworkError(
                f"upload of {self._name} did not finish within {self._deadline:.0f} s")
        left = self._size - self.sent
        if left <= 0:
            return b""
        try:
            chunk = self._f.read(left if n is None or n < 0 else min(max(n, _READ_CHUNK), left))
        except OSError as e:
            raise errors.NetworkError(f"reading {self._name} failed ({e.strerror or e})") from e
        if not chunk:
            # Cut short under us: say so here rather than let h11 refuse the short body with
            # a protocol error that names no file.
            raise errors.FileChanged(
                f"{self._name} shrank while uploading ({self.sent} of {self._size} bytes read)")
        self._hash.update(chunk)
        self.sent += len(chunk)
        self._progress(len(chunk))
        return chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def check_unchanged(path: Path, f: BinaryIO, st: os.stat_result) -> None:
    """Raise FileChanged if the open file or the path no longer matches `st`."""
    now = os.fstat(f.fileno())
    reason = None
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        reason = "replaced by another file"
    elif now.st_size != st.st_size:
        reason = f"size {st.st_size} -> {now.st_size} bytes"
    elif now.st_mtime_ns != st.st_mtime_ns:
        reason = "modified"
    else:
        try:
            current = os.stat(path)
        except FileNotFoundError:
            reason = "removed"
        else:
            if (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
                reason = "replaced by another file"
    if reason:
        raise errors.FileChanged(
            f"{path.name}: changed during its upload ({reason}); it will be retried once it settles")
