"""HTTP failures -> runwatchd.errors, each as one clean line.

An unsuccessful reply becomes the error kind a caller acts on (ErrorMapper.status_error, with the
server's Retry-After), an httpx error a NetworkError (network_error). Every message is one
bounded line without the API secret, and the httpx request we chain with `from e` loses its
Authorization header (scrub_exception).
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from runwatchd import errors

RETRY_AFTER_CAP = 300.0  # a server asking for more gets it capped; the retry deadline still rules


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


def server_retry_after(resp: httpx.Response) -> float | None:
    """The server's wish in seconds: `retry-after-ms` first (what the runwayml SDK reads first),
    then `Retry-After`; capped like parse_retry_after."""
    ms = resp.headers.get("retry-after-ms", "").strip()
    try:
        seconds = float(ms) / 1000.0
    except ValueError:
        return parse_retry_after(resp.headers.get("Retry-After"))
    if not math.isfinite(seconds):
        return parse_retry_after(resp.headers.get("Retry-After"))
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class ErrorMapper:
    """Builds our errors from httpx's replies and exceptions, never showing the API secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def status_error(self, resp: httpx.Response, where: str, kind: str) -> errors.RunwayError:
        """Map an unsuccessful reply from the API, the upload storage or a download host
        (`kind`: "api", "storage", "download") to the error kind a caller acts on."""
        status = resp.status_code
        label = status_label(resp)
        detail = self.clean(_error_detail(resp))
        msg = f"{label} from {where}" + (f": {detail}" if detail else "")
        retry_after = server_retry_after(resp)
        # The runwayml SDK obeys `x-should-retry` before looking at the status; we only take its
        # "false" (a "true" on a 4xx would resend a request that cannot succeed).
        should_retry = resp.headers.get("x-should-retry", "").strip().lower() != "false"
        if status == 401 and kind == "api":
            return errors.KeyRejected(
                f"your API key was rejected ({msg}); check RUNWAYML_API_SECRET or "
                "api_secret_file", status)
        if status == 403 and kind == "storage":
            return errors.SlotExpired(f"{msg} (the upload slot expired or was refused)",
                                      status, retry_after)
        if status == 429:
            return errors.RateLimited(msg, status, retry_after, should_retry=should_retry)
        if status == 408 or status >= 500:
            return errors.ServerError(msg, status, retry_after, should_retry=should_retry)
        if status == 400 and "credits" in detail.lower():
            return errors.NoCredits(msg, status)
        if kind == "download" and status in (401, 403, 404, 410):
            msg += " (the URL may have expired: fetch the task again for fresh output URLs)"
        return errors.InputRejected(msg, status)

    def network_error(self, e: httpx.HTTPError, where: str) -> errors.NetworkError:
        scrub_exception(e)
        try:
            where = f"{e.request.method} {short_url(e.request.url)}"
        except RuntimeError:
            pass
        return errors.NetworkError(self.clean(f"{where} failed: {describe_error(e)}"))

    def uncertain(self, where: str, what_failed: str) -> str:
        return self.clean(
            f"{where} failed after it was sent ({what_failed}): a task may have been created "
            "and billed, so it is not resubmitted")

    def clean(self, text: str) -> str:
        """One line, bounded, without the secret."""
        return self.scrub(text, 400)

    def scrub(self, text: str, limit: int) -> str:
        """One line of at most `limit` characters, without the secret (also where cutting at
        `limit` would leave the start of it)."""
        text = " ".join(text.replace(self._secret, "***").split()) if self._secret else (
            " ".join(text.split()))
        return text if len(text) <= limit else text[:limit - 1] + "…"


def scrub_exception(e: httpx.HTTPError) -> None:
    """httpx errors keep their request (with our Authorization header) and we chain them
    with `from e`: blank the header so no traceback or error reporter can show the key."""
    try:
        request = e.request
    except RuntimeError:
        return
    if "authorization" in request.headers:
        request.headers["Authorization"] = "Bearer ***"


def status_label(resp: httpx.Response) -> str:
    return f"{resp.status_code} {resp.reason_phrase}".strip()


def describe_error(e: BaseException) -> str:
    text = str(e).strip()
    kind = type(e).__name__
    return f"{kind} ({text})" if text and text != kind else kind


def json_or_none(resp: httpx.Response) -> Any:
    """The reply's JSON, or None when it is not JSON. A few kilobytes of `[[[[...` make
    json.loads raise RecursionError, which `except ValueError` misses (issue 13: a generation's
    row stayed "submitting" behind a traceback)."""
    try:
        return json.loads(resp.content)
    except (ValueError, RecursionError):
        return None


def short_url(url: httpx.URL) -> str:
    """host + path, never the query (presigned URLs carry their signature there)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}{url.path}"


def _error_detail(resp: httpx.Response) -> str:
    """The API's `error` and `issues`, an S3-style <Code>/<Message>, or the start of the body."""
    data = json_or_none(resp)
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
