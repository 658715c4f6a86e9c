"""What the client's respx tests share: the fake key, the API's base URL, an upload slot, and
routes that answer like Runway's API and its storage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import respx

SECRET = "key_s3cr3t0123456789abcdef"
BASE = "https://api.test"
STORAGE = "https://storage.test/bucket"
URI = "runway://upload/abc123"
FIELDS = {"key": "uploads/abc123/clip.mp4", "policy": "eyJleHAiOiIyMDI2In0=", "x-amz-signature": "f00"}
SLOT = {"uploadUrl": STORAGE, "fields": FIELDS, "runwayUri": URI}


def slot_route(respx_mock: respx.MockRouter, *responses: httpx.Response) -> respx.Route:
    route = respx_mock.post(f"{BASE}/v1/uploads")
    if responses:
        route.side_effect = list(responses)
    else:
        route.return_value = httpx.Response(200, json=SLOT)
    return route


def storage_route(respx_mock: respx.MockRouter, *statuses: int | Exception,
                  on_request: Callable[[httpx.Request], None] | None = None) -> respx.Route:
    """Storage answers `statuses` in turn (an exception is raised instead); 204 by default."""
    answers = list(statuses) or [204]

    def answer(request: httpx.Request) -> httpx.Response:
        if on_request:
            on_request(request)
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(status, Exception):
            raise status
        body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        return httpx.Response(status, content=b"" if status < 300 else body)

    return respx_mock.post(STORAGE).mock(side_effect=answer)


def api_error(status: int, error: str = "nope", **kw: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": error, **kw})
