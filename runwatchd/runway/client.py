"""The Runway HTTP client: streamed uploads, generation tasks, downloads, with retries.

Every httpx error is wrapped into runwatchd.errors (`raise ... from e`; http_errors.py maps them)
in one line that never contains the API secret; upload.py streams an upload's bytes. One
RunwayClient is shared by worker threads: httpx.Client pools connections and is thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from runwatchd import __version__, errors, fsutil
from runwatchd.runway import media
from runwatchd.runway.api import API_VERSION, DEFAULT_BASE_URL, Operation
from runwatchd.runway.download import DEFAULT_MAX_DOWNLOAD, Downloader, Fetched
from runwatchd.runway.http_errors import (
    ErrorMapper,
    describe_error,
    json_or_none,
    parse_retry_after,  # noqa: F401 - re-exported: part of the client's public interface
    scrub_exception,
    short_url,
    status_label,
)
from runwatchd.runway.replies import request_bounded
from runwatchd.runway.retries import Retrier, RetryPolicy
from runwatchd.runway.upload import Slot, check_unchanged, post_file

log = logging.getLogger(__name__)

USER_AGENT = f"runwatchd/{__version__}"

# An endpoint is its URL path after /v1/: "image_to_video", "generate/video", "recipes/product_ad"
# (no "..", no query, no third segment: the name never leaves /v1/<group>/).
_ENDPOINT_RE = re.compile(r"[a-z][a-z0-9_]*(?:/[a-z][a-z0-9_]*)?")
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NO_TASK_STATUSES = (429, 502, 503)
_SLOWEST_UPLOAD = 256 * 1024  # bytes/s the default upload deadline still allows


@dataclass(frozen=True)
class UploadResult:
    runway_uri: str
    uploaded_at: datetime
    size: int
    mtime_ns: int
    sha256: str
    attempts: int


class RunwayClient:
    """Talks to the Runway API (or the emulator) and to the presigned upload storage."""

    def __init__(
        self,
        api_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 30.0,
        upload_deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[Operation, BaseException, float], None] | None = None,
        max_transfers: int | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD,
    ) -> None:
        """`upload_deadline` bounds one upload attempt, in seconds (default: 60 s plus 4 s per
        MiB, so only a link slower than ~2 Mbit/s or a stalled one trips it); `on_retry` gets
        (operation, error, delay) before each retry sleep and may raise to stop retrying;
        `max_transfers`: see limit_transfers(); `max_download_bytes` caps one output."""
        secret = api_secret.strip()
        if not secret or any(c.isspace() or not c.isprintable() for c in secret):
            raise ValueError("the API secret is empty or contains whitespace")
        base = httpx.URL(base_url) if _is_http_url(base_url) else None
        if base is None:
            raise ValueError(f"the base URL must be http(s)://host[:port], got {base_url!r}")
        self._mapper = ErrorMapper(secret)
        self._base = base
        self._retrier = Retrier(retry, sleep=sleep, on_retry=on_retry)
        self._upload_deadline = upload_deadline
        self._transfers: threading.BoundedSemaphore | None = None
        self.limit_transfers(max_transfers)
        self._http = httpx.Client(
            base_url=base,
            headers={
                "Authorization": f"Bearer {secret}",
                "X-Runway-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            transport=transport,
        )
        # Presigned storage and output URLs must never see the key: a client without it.
        self._storage = httpx.Client(
            headers={"User-Agent": USER_AGENT}, timeout=timeout, transport=transport
        )
        self._downloader = Downloader(self._http, self._storage, base, self._mapper,
                                      max_bytes=max_download_bytes)

    def limit_transfers(self, n: int | None) -> None:
        """At most `n` presigned POSTs (the part of an upload that moves the bytes) at once,
        however many threads call upload(); None: no limit. Slot requests are not counted: each
        is one API round trip, and overlapping them with other files' transfers is what keeps a
        folder of small files from waiting on latency (benchmarks/, case 2)."""
        self._transfers = threading.BoundedSemaphore(n) if n else None

    @property
    def base_url(self) -> str:
        """The API's base URL (the task follower polls a local emulator faster than Runway)."""
        return str(self._base)

    def __repr__(self) -> str:
        return f"RunwayClient({str(self._base)!r})"

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    def __enter__(self) -> RunwayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- API calls ------------------------------------------------------------------------

    def check_key(self, *, attempts: int | None = None) -> dict[str, Any]:
        """GET /v1/organization: proves the key works; returns credit balance and limits.

        `attempts` caps the retries below the policy's: a start-up check must not keep systemd
        waiting for minutes while the API is unreachable (the daemon starts and retries later).
        """
        return self._retrier.run(Operation.CHECK_KEY, "key check",
                                 lambda: self._api_object("GET", "/v1/organization"),
                                 policy=self._retrier.capped(attempts))

    def get_task(self, task_id: str) -> dict[str, Any]:
        """GET /v1/tasks/{id}, retried on transient errors."""
        path = f"/v1/tasks/{quote(task_id, safe='')}"
        return self._retrier.run(Operation.GET_TASK, f"status of task {task_id}",
                                 lambda: self._api_object("GET", path))

    def cancel_task(self, task_id: str) -> None:
        """DELETE /v1/tasks/{id}; a task that is already gone (404) counts as cancelled."""
        path = f"/v1/tasks/{quote(task_id, safe='')}"

        def attempt() -> None:
            resp = self._send(self._http, "DELETE", path)
            if resp.status_code == 404:
                log.debug("task %s was already gone when cancelled", task_id)
            elif not resp.is_success:
                raise self._mapper.status_error(resp, f"DELETE {path}", "api")

        self._retrier.run(Operation.CANCEL_TASK, f"cancel of task {task_id}", attempt)

    def create_task(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/<endpoint> -> {"id": ...}: one attempt (no idempotency key), so the caller's
        journal sees each one (generation/submitter.py). A RetryableError proves no task exists
        (retry after submit_retry_delay()); errors.SubmitUncertain: one may exist, billed."""
        if not _ENDPOINT_RE.fullmatch(endpoint):
            raise errors.InputRejected(f"invalid endpoint name {endpoint!r}")
        where = f"POST /v1/{endpoint}"
        try:  # 400/401/404/405/422 ("do not retry") create nothing either: raised as they are
            resp = request_bounded(self._http, "POST", f"/v1/{endpoint}", json_body=body)
        except _NOT_SENT as e:
            raise self._mapper.network_error(e, where) from e
        except httpx.HTTPError as e:
            scrub_exception(e)
            raise errors.SubmitUncertain(self._mapper.uncertain(where, describe_error(e))) from e
        except errors.NetworkError as e:  # a reply too large to read: the POST was sent
            raise errors.SubmitUncertain(self._mapper.uncertain(where, str(e))) from e
        if resp.is_success:
            data = json_or_none(resp)
            if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
                return data
            error: errors.RunwayError = errors.SubmitUncertain(self._mapper.uncertain(
                where, f"{status_label(resp)} without a task id"), resp.status_code)
            raise error
        error = self._mapper.status_error(resp, where, "api")
        # runway-api.md: "429 too many requests ... Retry with backoff"; "502/503 = load
        # shedding": refused before any work. 500, 504 ("overloaded"), 408 stay uncertain.
        if resp.status_code in _NO_TASK_STATUSES or not isinstance(error, errors.RetryableError):
            raise error
        raise errors.SubmitUncertain(self._mapper.uncertain(where, str(error)), resp.status_code)

    def submit_retry_delay(self, attempt: int, started: float,
                           error: errors.RetryableError) -> float | None:
        """Seconds to wait before POST `attempt` + 1 after `error`, or None (Retrier.next_delay)."""
        return self._retrier.next_delay(attempt, started, error)

    def wait_to_resubmit(self, endpoint: str, attempt: int, delay: float,
                         error: errors.RetryableError) -> None:
        """The sleep between two generation POSTs (logged and counted like every retry)."""
        self._retrier.sleep_before(Operation.CREATE_TASK, f"{endpoint} request", attempt, delay,
                                   error)

    # -- upload ---------------------------------------------------------------------------

    def upload(self, path: Path, *, progress: Callable[[int], None] | None = None) -> UploadResult:
        """Upload `path` to Runway's ephemeral storage; return its runway:// URI and sha256.

        Each attempt reopens the file and asks for a fresh slot. `progress(n)` gets the bytes
        sent since its last call; when an attempt restarts, a negative n takes back what the
        failed attempt had sent, so the running sum is always the current attempt's bytes.
        Raises errors.InvalidFile before any network call, errors.FileChanged if the file
        changed while it was read (not retried here: let it settle first).
        """
        st = media.check_file(path)
        deadline = self._upload_deadline
        if deadline is None:
            deadline = 60.0 + st.st_size / _SLOWEST_UPLOAD
        attempts = 0
        reported = 0

        def report(delta: int) -> None:
            nonlocal reported
            reported += delta
            if progress is not None:
                progress(delta)

        def attempt() -> tuple[str, str, datetime]:
            nonlocal attempts
            attempts += 1
            if reported:
                report(-reported)
            return self._upload_once(path, st, deadline, report)

        try:
            uri, sha256, uploaded_at = self._retrier.run(Operation.UPLOAD,
                                                         f"upload of {path.name}", attempt)
        except _SlotsExhausted as e:
            raise e.error from e.error.__cause__
        return UploadResult(uri, uploaded_at, st.st_size, st.st_mtime_ns, sha256, attempts)

    def _upload_once(
        self, path: Path, st: os.stat_result, deadline: float, progress: Callable[[int], None],
    ) -> tuple[str, str, datetime]:
        name = fsutil.utf8_text(path.name)  # Runway only shows the name
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with block below
        except FileNotFoundError as e:
            raise errors.FileChanged(f"{name}: the file disappeared before its upload") from e
        except OSError as e:
            raise errors.InvalidFile(f"{name}: cannot read ({e.strerror or e})") from e
        with f:
            check_unchanged(path, f, st)
            # The URI is valid 24 h from the upload: note the time before it starts (the safe side).
            uploaded_at = datetime.now(UTC)
            slot = self._request_slot_retrying(name)
            where = f"POST {short_url(httpx.URL(slot.upload_url))}"
            gate = self._transfers
            with gate if gate is not None else contextlib.nullcontext():
                resp, reader = post_file(self._storage, self._mapper, path, f, st, slot, where,
                                         deadline, progress)
            check_unchanged(path, f, st)
            if not resp.is_success:
                raise self._mapper.status_error(resp, where, "storage")
            if reader.sent != st.st_size:
                raise errors.ServerError(
                    f"{status_label(resp)} from {where} before all of {name} was sent "
                    f"({reader.sent} of {st.st_size} bytes)", resp.status_code)
            return slot.runway_uri, reader.hexdigest(), uploaded_at

    def _request_slot_retrying(self, filename: str) -> Slot:
        """A slot, with its own retries: a transient failure of this small request must not use
        up one of the attempts of the whole upload (at a 30% error rate, an attempt needing
        two lucky requests in a row fails half the time, and 8 of those fail 1 file in 200)."""
        try:
            return self._retrier.run(Operation.UPLOAD, f"upload of {filename} (slot request)",
                                  lambda: self._request_slot(filename))
        except errors.RetryableError as e:
            raise _SlotsExhausted(e) from e

    def _request_slot(self, filename: str) -> Slot:
        data = self._api_object("POST", "/v1/uploads", {"filename": filename, "type": "ephemeral"})
        url, fields, uri = data.get("uploadUrl"), data.get("fields"), data.get("runwayUri")
        ok = (
            isinstance(url, str) and _is_http_url(url)
            and isinstance(fields, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
            and isinstance(uri, str) and bool(uri)
        )
        if not ok:
            raise errors.ServerError("POST /v1/uploads: the reply lacks uploadUrl, fields or "
                                     "runwayUri", 200)
        return Slot(url, dict(fields), uri)  # type: ignore[arg-type]

    # -- download -------------------------------------------------------------------------

    def download(self, url: str, dest: Path) -> int:
        """Stream `url` into `dest` atomically; return the bytes written. Retried on transient
        errors; bounded in size, time and redirects (runway/download.py). The API key is sent
        only to the API's own origin, never to output hosts."""
        target = self._downloader.check_url(url)
        return self._retrier.run(Operation.DOWNLOAD, f"download of {dest.name}",
                              lambda: self._downloader.fetch(target, dest))

    def download_output(self, url: str, directory: Path,
                        choose: Callable[[str | None], Path]) -> Fetched:
        """download() for a generation's output, into the file `choose(content_type)` names
        once the reply's headers are in (called again on a retry)."""
        target = self._downloader.check_url(url)
        return self._retrier.run(Operation.DOWNLOAD, f"download of {short_url(target)}",
                              lambda: self._downloader.fetch_to(target, directory, choose))

    def scrub(self, text: str, limit: int = 2000) -> str:
        """Text that came from the API (a task's `failure`), as it may be stored or shown: one
        line, without the secret, at most `limit` characters."""
        return self._mapper.scrub(text, limit)

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, client: httpx.Client, method: str, url: str,
              json_body: Any = None) -> httpx.Response:
        try:
            return request_bounded(client, method, url, json_body=json_body)
        except httpx.HTTPError as e:
            raise self._mapper.network_error(e, f"{method} {url}") from e

    def _api_object(self, method: str, path: str, json_body: Any = None) -> dict[str, Any]:
        resp = self._send(self._http, method, path, json_body)
        where = f"{method} {path}"
        if not resp.is_success:
            raise self._mapper.status_error(resp, where, "api")
        data = json_or_none(resp)
        if not isinstance(data, dict):
            raise errors.NetworkError(
                f"{status_label(resp)} from {where}, but the reply is not a JSON object",
                resp.status_code)
        return data


class _SlotsExhausted(Exception):
    """The slot request already used up its retries: the upload must not retry it again."""

    def __init__(self, error: errors.RetryableError) -> None:
        super().__init__(str(error))
        self.error = error


def _is_http_url(text: str) -> bool:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)
