"""The Runway HTTP client: streamed uploads, generation tasks, downloads, with retries.

Every httpx error is wrapped here into runwatchd.errors (`raise ... from e`); the messages are one
line and never contain the API secret. One RunwayClient is shared by worker threads: httpx.Client
pools connections and is safe to use from several threads at once.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import io
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
import tenacity

from runwatchd import __version__, errors, fsutil, media

log = logging.getLogger(__name__)

API_VERSION = "2024-11-06"
DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
USER_AGENT = f"runwatchd/{__version__}"
RETRY_AFTER_CAP = 300.0  # a server asking for more gets it capped; the retry deadline still rules

_T = TypeVar("_T")
_ENDPOINT_RE = re.compile(r"[a-z][a-z0-9_]*")
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_DOWNLOAD_CHUNK = 1024 * 1024
_SLOWEST_UPLOAD = 256 * 1024  # bytes/s the default upload deadline still allows
# httpx asks the file for 64 KiB at a time; handing it 1 MiB makes 16x fewer trips through
# httpx, h11 and the socket: a 200 MiB upload over loopback went from 1.44x to 1.14x curl's time
# (benchmarks/, case 1). Hashing on a helper thread instead was slower on 2 cores.
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class UploadResult:
    runway_uri: str
    uploaded_at: datetime
    size: int
    mtime_ns: int
    sha256: str
    attempts: int


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    initial_delay: float = 1.0
    max_delay: float = 60.0
    deadline: float = 900.0


@dataclass(frozen=True)
class _Slot:
    upload_url: str
    fields: dict[str, str]
    runway_uri: str


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date), capped; else None."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


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
        on_retry: Callable[[str, BaseException, float], None] | None = None,
        max_transfers: int | None = None,
    ) -> None:
        """`upload_deadline` bounds one upload attempt, in seconds (default: 60 s plus 4 s per
        MiB, so only a link slower than ~2 Mbit/s or a stalled one trips it); `on_retry` gets
        (what, error, delay) before each retry sleep and may raise to stop retrying;
        `max_transfers`: see limit_transfers()."""
        secret = api_secret.strip()
        if not secret or any(c.isspace() or not c.isprintable() for c in secret):
            raise ValueError("the API secret is empty or contains whitespace")
        base = httpx.URL(base_url) if _is_http_url(base_url) else None
        if base is None:
            raise ValueError(f"the base URL must be http(s)://host[:port], got {base_url!r}")
        self._secret = secret
        self._base = base
        self._retry = retry
        self._sleep = sleep
        self._on_retry = on_retry
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

    def limit_transfers(self, n: int | None) -> None:
        """At most `n` presigned POSTs (the part of an upload that moves the bytes) at once,
        however many threads call upload(); None: no limit. Slot requests are not counted: each
        is one API round trip, and overlapping them with other files' transfers is what keeps a
        folder of small files from waiting on latency (benchmarks/, case 2)."""
        self._transfers = threading.BoundedSemaphore(n) if n else None

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
        policy = self._retry
        if attempts is not None:
            policy = replace(policy, max_attempts=min(attempts, policy.max_attempts))
        return self._retrying("key check", lambda: self._api_object("GET", "/v1/organization"),
                              policy=policy)

    def get_task(self, task_id: str) -> dict[str, Any]:
        """GET /v1/tasks/{id}, retried on transient errors."""
        path = f"/v1/tasks/{quote(task_id, safe='')}"
        return self._retrying(f"status of task {task_id}", lambda: self._api_object("GET", path))

    def cancel_task(self, task_id: str) -> None:
        """DELETE /v1/tasks/{id}; a task that is already gone (404) counts as cancelled."""
        path = f"/v1/tasks/{quote(task_id, safe='')}"

        def attempt() -> None:
            resp = self._send(self._http, "DELETE", path)
            if resp.status_code == 404:
                log.debug("task %s was already gone when cancelled", task_id)
            elif not resp.is_success:
                raise self._status_error(resp, f"DELETE {path}", "api")

        self._retrying(f"cancel of task {task_id}", attempt)

    def create_task(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/<endpoint> -> {"id": ..., ...}.

        There is no idempotency key, so this retries only where no task can exist: the
        connection was never made, 429, 503. A failure after the request was sent raises
        errors.SubmitUncertain: a task may exist and be billed.
        """
        if not _ENDPOINT_RE.fullmatch(endpoint):
            raise errors.InputRejected(f"invalid endpoint name {endpoint!r}")
        path = f"/v1/{endpoint}"
        where = f"POST {path}"

        def attempt() -> dict[str, Any]:
            try:
                resp = self._http.post(path, json=body)
            except _NOT_SENT as e:
                raise self._network_error(e, where) from e
            except httpx.HTTPError as e:
                self._scrub_exception(e)
                raise errors.SubmitUncertain(
                    self._uncertain(where, _describe(e))
                ) from e
            if resp.is_success:
                data = _json_or_none(resp)
                if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
                    return data
                raise errors.SubmitUncertain(
                    self._uncertain(where, f"{_status_label(resp)} without a task id"),
                    resp.status_code,
                )
            error = self._status_error(resp, where, "api")
            if resp.status_code in (429, 503) or not isinstance(error, errors.RetryableError):
                raise error
            raise errors.SubmitUncertain(self._uncertain(where, str(error)), resp.status_code)

        return self._retrying(f"{endpoint} request", attempt)

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
            uri, sha256, uploaded_at = self._retrying(f"upload of {path.name}", attempt)
        except _SlotsExhausted as e:
            raise e.error from e.error.__cause__
        return UploadResult(uri, uploaded_at, st.st_size, st.st_mtime_ns, sha256, attempts)

    def _upload_once(
        self, path: Path, st: os.stat_result, deadline: float, progress: Callable[[int], None],
    ) -> tuple[str, str, datetime]:
        name = path.name
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with block below
        except FileNotFoundError as e:
            raise errors.FileChanged(f"{name}: the file disappeared before its upload") from e
        except OSError as e:
            raise errors.InvalidFile(f"{name}: cannot read ({e.strerror or e})") from e
        with f:
            _check_unchanged(path, f, st)
            # The URI is valid 24 h from the upload: note the time before it starts (the safe side).
            uploaded_at = datetime.now(UTC)
            slot = self._request_slot_retrying(name)
            where = f"POST {_short_url(httpx.URL(slot.upload_url))}"
            gate = self._transfers
            with gate if gate is not None else contextlib.nullcontext():
                resp, reader = self._post_file(path, f, st, slot, where, deadline, progress)
            _check_unchanged(path, f, st)
            if not resp.is_success:
                raise self._status_error(resp, where, "storage")
            if reader.sent != st.st_size:
                raise errors.ServerError(
                    f"{_status_label(resp)} from {where} before all of {name} was sent "
                    f"({reader.sent} of {st.st_size} bytes)", resp.status_code)
            return slot.runway_uri, reader.hexdigest(), uploaded_at

    def _post_file(self, path: Path, f: BinaryIO, st: os.stat_result, slot: _Slot, where: str,
                   deadline: float, progress: Callable[[int], None],
                   ) -> tuple[httpx.Response, _UploadReader]:
        """The presigned POST itself: the fields verbatim, then the file, streamed."""
        reader = _UploadReader(f, st.st_size, deadline, path.name, progress)
        content_type = media.MEDIA_TYPES[path.suffix.lower()]
        try:
            resp = self._storage.post(
                slot.upload_url,
                data=slot.fields,
                files={"file": (path.name, reader, content_type)},  # type: ignore[dict-item]
            )
        except httpx.HTTPError as e:
            _check_unchanged(path, f, st)
            raise self._network_error(e, where) from e
        except errors.RunwatchdError:
            _check_unchanged(path, f, st)
            raise
        return resp, reader

    def _request_slot_retrying(self, filename: str) -> _Slot:
        """A slot, with its own retries: a transient failure of this small request must not use
        up one of the attempts of the whole upload (at a 30% error rate, an attempt needing
        two lucky requests in a row fails half the time, and 8 of those fail 1 file in 200)."""
        try:
            return self._retrying(f"upload of {filename} (slot request)",
                                  lambda: self._request_slot(filename))
        except errors.RetryableError as e:
            raise _SlotsExhausted(e) from e

    def _request_slot(self, filename: str) -> _Slot:
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
        return _Slot(url, dict(fields), uri)  # type: ignore[arg-type]

    # -- download -------------------------------------------------------------------------

    def download(self, url: str, dest: Path) -> int:
        """Stream `url` into `dest` atomically; return the bytes written. Retried on transient
        errors. The API key is sent only to the API's own origin, never to output hosts."""
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as e:
            raise errors.InputRejected("cannot download: invalid URL") from e
        if target.scheme not in ("http", "https"):
            raise errors.InputRejected(f"cannot download: not an http(s) URL ({target.scheme})")
        same_origin = (target.scheme, target.host, target.port) == (
            self._base.scheme, self._base.host, self._base.port)
        client = self._http if same_origin else self._storage
        where = f"GET {_short_url(target)}"
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> int:
            written = 0
            try:
                with client.stream("GET", target, follow_redirects=True) as resp:
                    if not resp.is_success:
                        resp.read()
                        raise self._status_error(resp, where, "api" if same_origin else "download")
                    with fsutil.atomic_writer(dest) as f:
                        for chunk in resp.iter_bytes(_DOWNLOAD_CHUNK):
                            f.write(chunk)
                            written += len(chunk)
            except httpx.HTTPError as e:
                raise self._network_error(e, where) from e
            return written

        return self._retrying(f"download of {dest.name}", attempt)

    # -- plumbing -------------------------------------------------------------------------

    def _retrying(self, what: str, fn: Callable[[], _T], *,
                  policy: RetryPolicy | None = None) -> _T:
        policy = policy or self._retry
        retryer = tenacity.Retrying(
            sleep=self._sleep,
            stop=(tenacity.stop_after_attempt(policy.max_attempts)
                  | tenacity.stop_before_delay(policy.deadline)),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(errors.RetryableError),
            before_sleep=lambda rs: self._before_sleep(what, rs, policy.max_attempts),
            reraise=True,
            name=what,
        )
        return retryer(fn)

    def _wait(self, rs: tenacity.RetryCallState) -> float:
        policy = self._retry
        backoff = tenacity.wait_random_exponential(
            multiplier=policy.initial_delay, max=policy.max_delay)(rs)
        error = rs.outcome.exception() if rs.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return max(retry_after, backoff) if retry_after is not None else backoff

    def _before_sleep(self, what: str, rs: tenacity.RetryCallState, max_attempts: int) -> None:
        error = rs.outcome.exception() if rs.outcome else None
        delay = rs.upcoming_sleep
        log.warning("retrying %s in %.1f s (attempt %d/%d): %s", what, delay,
                    rs.attempt_number + 1, max_attempts, error)
        if self._on_retry is not None and error is not None:
            self._on_retry(what, error, delay)

    def _send(self, client: httpx.Client, method: str, url: str,
              json_body: Any = None) -> httpx.Response:
        try:
            return client.request(method, url, json=json_body)
        except httpx.HTTPError as e:
            raise self._network_error(e, f"{method} {url}") from e

    def _api_object(self, method: str, path: str, json_body: Any = None) -> dict[str, Any]:
        resp = self._send(self._http, method, path, json_body)
        where = f"{method} {path}"
        if not resp.is_success:
            raise self._status_error(resp, where, "api")
        data = _json_or_none(resp)
        if not isinstance(data, dict):
            raise errors.NetworkError(
                f"{_status_label(resp)} from {where}, but the reply is not a JSON object",
                resp.status_code)
        return data

    def _status_error(self, resp: httpx.Response, where: str, kind: str) -> errors.RunwayError:
        """Map an unsuccessful reply from the API, the upload storage or a download host
        (`kind`: "api", "storage", "download") to the error kind a caller acts on."""
        status = resp.status_code
        label = _status_label(resp)
        detail = self._clean(_error_detail(resp))
        msg = f"{label} from {where}" + (f": {detail}" if detail else "")
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status == 401 and kind == "api":
            return errors.KeyRejected(
                f"your API key was rejected ({msg}); check RUNWAYML_API_SECRET or "
                "api_secret_file", status)
        if status == 403 and kind == "storage":
            return errors.SlotExpired(f"{msg} (the upload slot expired or was refused)",
                                      status, retry_after)
        if status == 429:
            return errors.RateLimited(msg, status, retry_after)
        if status == 408 or status >= 500:
            return errors.ServerError(msg, status, retry_after)
        if status == 400 and "credits" in detail.lower():
            return errors.NoCredits(msg, status)
        if kind == "download" and status in (401, 403, 404, 410):
            msg += " (the URL may have expired: fetch the task again for fresh output URLs)"
        return errors.InputRejected(msg, status)

    def _network_error(self, e: httpx.HTTPError, where: str) -> errors.NetworkError:
        self._scrub_exception(e)
        try:
            where = f"{e.request.method} {_short_url(e.request.url)}"
        except RuntimeError:
            pass
        return errors.NetworkError(self._clean(f"{where} failed: {_describe(e)}"))

    def _uncertain(self, where: str, what_failed: str) -> str:
        return self._clean(
            f"{where} failed after it was sent ({what_failed}): a task may have been created "
            "and billed, so it is not resubmitted")

    def _clean(self, text: str) -> str:
        """One line, bounded, without the secret."""
        text = " ".join(text.replace(self._secret, "***").split())
        return text if len(text) <= 400 else text[:399] + "…"

    def _scrub_exception(self, e: httpx.HTTPError) -> None:
        """httpx errors keep their request (with our Authorization header) and we chain them
        with `from e`: blank the header so no traceback or error reporter can show the key."""
        try:
            request = e.request
        except RuntimeError:
            return
        if "authorization" in request.headers:
            request.headers["Authorization"] = "Bearer ***"


class _SlotsExhausted(Exception):
    """The slot request already used up its retries: the upload must not retry it again."""

    def __init__(self, error: errors.RetryableError) -> None:
        super().__init__(str(error))
        self.error = error


class _UploadReader:
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
        self._hash.update(chunk)
        self.sent += len(chunk)
        self._progress(len(chunk))
        return chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _check_unchanged(path: Path, f: BinaryIO, st: os.stat_result) -> None:
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


def _is_http_url(text: str) -> bool:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _status_label(resp: httpx.Response) -> str:
    return f"{resp.status_code} {resp.reason_phrase}".strip()


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    kind = type(e).__name__
    return f"{kind} ({text})" if text and text != kind else kind


def _short_url(url: httpx.URL) -> str:
    """host + path, never the query (presigned URLs carry their signature there)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}{url.path}"


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _error_detail(resp: httpx.Response) -> str:
    """The API's `error` and `issues`, an S3-style <Code>/<Message>, or the start of the body."""
    data = _json_or_none(resp)
    if isinstance(data, dict):
        error = data.get("error") or data.get("message") or ""
        parts = [str(error)] if error else []
        issues = data.get("issues")
        if isinstance(issues, list) and issues:
            parts.append("; ".join(_format_issue(i) for i in issues[:10]))
        return ": ".join(parts)
    text = resp.text
    found = [m.group(1) for tag in ("Code", "Message")
             if (m := re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S))]
    return " ".join(found) if found else text[:200]


def _format_issue(issue: object) -> str:
    if not isinstance(issue, dict):
        return str(issue)
    path = issue.get("path")
    if isinstance(path, list):
        path = ".".join(str(p) for p in path)
    message = issue.get("message", "")
    return f"{path}: {message}" if path else str(message)
