"""Helpers for the emulator's tests: the test key, uploads over the wire, hand-built forms."""

from __future__ import annotations

from typing import Any

import httpx

from runwatchd.emulator import API_VERSION

KEY = "test-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
PAYLOAD = bytes(range(256)) * 8  # 2 KiB, above the 512 B minimum


def slot(client: httpx.Client, filename: str = "shot.jpg") -> dict[str, Any]:
    """Step one of an upload: POST /v1/uploads, asserting the 200."""
    reply = client.post("/v1/uploads", json={"filename": filename, "type": "ephemeral"})
    assert 200 == reply.status_code, reply.text
    return reply.json()


def upload(client: httpx.Client, data: bytes = PAYLOAD, filename: str = "shot.jpg") -> str:
    """The whole three-step upload; returns the runway:// URI."""
    s = slot(client, filename)
    reply = httpx.post(
        s["uploadUrl"], data=s["fields"], files={"file": (filename, data, "image/jpeg")}
    )
    assert 204 == reply.status_code, reply.text
    return s["runwayUri"]


def form(parts: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    """A hand-built multipart body, so tests can break the rules httpx always follows."""
    boundary = "emulatortestboundary"
    body = b""
    for name, value, filename in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_form(url: str, parts: list[tuple[str, bytes, str | None]]) -> httpx.Response:
    """POST a hand-built multipart body."""
    body, ctype = form(parts)
    return httpx.post(url, content=body, headers={"Content-Type": ctype})


def fields_of(s: dict[str, Any]) -> list[tuple[str, bytes, str | None]]:
    """A slot's policy fields as form parts."""
    return [(k, v.encode(), None) for k, v in s["fields"].items()]


def i2v(uri: str, **extra: Any) -> dict[str, Any]:
    """An image_to_video body Runway accepts (gen4_turbo), with extra fields."""
    return {"model": "gen4_turbo", "promptImage": uri, "ratio": "1280:720", **extra}


def status(client: httpx.Client, task_id: str) -> dict[str, Any]:
    """GET /v1/tasks/{id}, asserting the 200."""
    reply = client.get(f"/v1/tasks/{task_id}")
    assert 200 == reply.status_code, reply.text
    return reply.json()
