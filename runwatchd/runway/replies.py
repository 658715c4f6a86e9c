"""Replies from the API, read with a size cap.

An API reply is input like any other: httpx reads a body whole, so an endless or huge reply
(a broken proxy, a hostile stand-in) would be held in memory. (Its JSON is parsed by
http_errors.json_or_none, which a nesting bomb cannot sink either.)
"""

from __future__ import annotations

from typing import Any

import httpx

from runwatchd import errors, fsutil
from runwatchd.runway.http_errors import short_url, status_label

# Every reply the API sends is a small JSON object (a task with a few output URLs, an
# organization with per-model limits); a megabyte is far beyond any of them.
MAX_REPLY_BYTES = 1024 * 1024
# Headers that describe the body as it came over the wire, not the decoded copy we keep.
_WIRE_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def wire_json(value: Any) -> Any:
    """`value` with every string made UTF-8-encodable: a file name that is not UTF-8 on disk
    (surrogates from os.fsdecode, e.g. in a prompt's {name}) would make httpx raise; its bad
    bytes go as backslash escapes instead (fsutil.utf8_text), as the upload sends the name."""
    if isinstance(value, str):
        return fsutil.utf8_text(value)
    if isinstance(value, dict):
        return {wire_json(k): wire_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_json(v) for v in value]
    return value


def request_bounded(client: httpx.Client, method: str, url: str | httpx.URL, *,
                    json_body: Any = None, limit: int = MAX_REPLY_BYTES) -> httpx.Response:
    """client.request(), but a body over `limit` bytes raises NetworkError instead of filling
    memory. httpx's exceptions pass through for the caller to map."""
    with client.stream(method, url, json=wire_json(json_body)) as resp:
        body = bytearray()
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise errors.NetworkError(
                    f"{status_label(resp)} from {method} {short_url(resp.request.url)}: the "
                    f"reply is larger than {limit // 1024} KiB", resp.status_code)
        headers = [(k, v) for k, v in resp.headers.multi_items()
                   if k.lower() not in _WIRE_HEADERS]
        return httpx.Response(resp.status_code, headers=headers, content=bytes(body),
                              request=resp.request, extensions=resp.extensions)
