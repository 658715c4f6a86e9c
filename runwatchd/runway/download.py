"""Downloads of generation outputs: bounded in size, time, redirects and disk, never with the key.

An output URL comes from the API's answer, so it is input like any other: a hostile or broken
server may send a `file://` URL, redirect in a loop or to plain http, send 20 GB, or trickle one
byte every few seconds. Each of those ends here with one clear error instead of a full disk or a
worker pinned for ever:

    not http(s), a redirect to plain http (except the API's own origin), > MAX_REDIRECTS hops,
    a size over the cap (Content-Length or counted)          -> DownloadRefused (never retried)
    less free space than the download (+ a reserve)          -> DiskFull (later, not now)
    slower than ~2 Mbit/s on average after a minute           -> NetworkError (retried)

The key goes only to the API's own origin: each hop is sent with the client that fits its origin
(httpx's own redirect handling would choose once, for the first URL).
"""

from __future__ import annotations

import errno
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from runwatchd import errors, fsutil
from runwatchd.runway.http_errors import ErrorMapper, short_url

MiB = 1024 * 1024
# The largest single output Runway makes today is a few GB (a 4K ProRes upscale); 8 GiB leaves
# room without letting a hostile server fill a disk. `[runway] max_download_mb` changes it.
DEFAULT_MAX_DOWNLOAD = 8 * 1024 * MiB
MAX_REDIRECTS = 5
# Kept free beside a download, so an output never takes a volume's very last bytes.
DISK_RESERVE = 64 * MiB
# One attempt may take 60 s plus 4 s per MiB received: only a link slower than ~2 Mbit/s, or a
# server that trickles bytes to hold a worker, trips it (httpx's timeouts are per read).
_BASE_SECONDS = 60.0
_SECONDS_PER_MIB = 4.0


@dataclass(frozen=True)
class Fetched:
    """One finished download: where it landed, its size, and the Content-Type it was served as
    (None when the server sent none), from which the output's extension is taken."""

    path: Path
    size: int
    content_type: str | None


class Downloader:
    """Streams one URL into a file atomically, under the limits above."""

    def __init__(self, api: httpx.Client, storage: httpx.Client, api_origin: httpx.URL,
                 mapper: ErrorMapper, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD,
                 clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[Path], int] | None = None) -> None:
        self._api = api
        self._storage = storage
        self._origin = _origin(api_origin)
        self._mapper = mapper
        self._max_bytes = max_bytes
        self._clock = clock
        self._free_bytes = free_bytes or _free_bytes

    def check_url(self, url: str) -> httpx.URL:
        """The URL as httpx reads it, or DownloadRefused: only http(s)."""
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as e:
            raise errors.DownloadRefused("cannot download: invalid URL") from e
        if target.scheme not in ("http", "https") or not target.host:
            raise errors.DownloadRefused(
                f"cannot download: not an http(s) URL ({target.scheme or 'no scheme'})")
        return target

    def fetch(self, target: httpx.URL, dest: Path) -> int:
        """One attempt: follow redirects under the rules, stream into `dest` atomically; the
        bytes written. Raises RunwayError kinds (retryable or not) or DiskFull."""
        return self.fetch_to(target, dest.parent, lambda _content_type: dest).size

    def fetch_to(self, target: httpx.URL, directory: Path,
                 choose: Callable[[str | None], Path]) -> Fetched:
        """Like fetch(), into the file `choose(content_type)` names once the reply's headers are
        in (an output's extension comes from its Content-Type); `directory` is checked for space
        before the request."""
        self._check_space(directory / "output", 0)
        for _hop in range(MAX_REDIRECTS + 1):
            same_origin = _origin(target) == self._origin
            client = self._api if same_origin else self._storage
            where = f"GET {short_url(target)}"
            try:
                with client.stream("GET", target, follow_redirects=False) as resp:
                    if resp.is_redirect:
                        target = self._next_hop(target, resp)
                        continue
                    if not resp.is_success:
                        resp.read()
                        raise self._mapper.status_error(
                            resp, where, "api" if same_origin else "download")
                    content_type = resp.headers.get("content-type")
                    dest = choose(content_type)
                    return Fetched(dest, self._save(resp, dest, target), content_type)
            except httpx.HTTPError as e:
                raise self._mapper.network_error(e, where) from e
        raise errors.DownloadRefused(
            f"cannot download: more than {MAX_REDIRECTS} redirects ({short_url(target)})")

    def _next_hop(self, current: httpx.URL, resp: httpx.Response) -> httpx.URL:
        location = resp.headers.get("location", "")
        try:
            target = current.join(location)
        except httpx.InvalidURL as e:
            raise errors.DownloadRefused("cannot download: invalid redirect") from e
        if target.scheme != "https" and _origin(target) != self._origin:
            raise errors.DownloadRefused(
                f"cannot download: redirected to a non-https URL ({target.scheme})")
        return target

    def _save(self, resp: httpx.Response, dest: Path, target: httpx.URL) -> int:
        declared = _content_length(resp)
        if declared is not None and declared > self._max_bytes:
            raise errors.DownloadRefused(
                f"cannot download {short_url(target)}: {declared} bytes is over the "
                f"{self._max_bytes // MiB} MiB limit")
        self._check_space(dest, declared or 0)
        started = self._clock()
        written = 0
        try:
            with fsutil.atomic_writer(dest) as f:
                # As the bytes arrive: a chunk size would buffer a trickle and never check it.
                for chunk in resp.iter_bytes():
                    written += len(chunk)
                    if written > self._max_bytes:
                        raise errors.DownloadRefused(
                            f"cannot download {short_url(target)}: more than "
                            f"{self._max_bytes // MiB} MiB")
                    allowed = _BASE_SECONDS + _SECONDS_PER_MIB * written / MiB
                    if self._clock() - started > allowed:
                        raise errors.NetworkError(
                            f"GET {short_url(target)}: too slow ({written} bytes in "
                            f"{self._clock() - started:.0f} s)")
                    f.write(chunk)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.DiskFull(f"no space left for {dest.name} in {dest.parent}") from e
            raise
        return written

    def _check_space(self, dest: Path, needed: int) -> None:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            free = self._free_bytes(dest.parent)
        except OSError as e:
            raise errors.DiskFull(f"cannot write to {dest.parent}: {e.strerror or e}") from e
        if free < needed + DISK_RESERVE:
            raise errors.DiskFull(
                f"not enough free space in {dest.parent} for {dest.name} ({free // MiB} MiB free,"
                f" {(needed + DISK_RESERVE) // MiB} MiB needed)")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _content_length(resp: httpx.Response) -> int | None:
    try:
        n = int(resp.headers.get("content-length", ""))
    except ValueError:
        return None
    return n if n >= 0 else None


def _free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free
