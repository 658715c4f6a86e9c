"""The emulator's uploads over real sockets: slots, the presigned POST and its strictness."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_helpers import HEADERS, PAYLOAD, fields_of, form, post_form, slot, upload
from helpers import FakeClock, PeakRss

from runwatchd.emulator import Emulator

# -- uploads -----------------------------------------------------------------------------------


def test_upload_happy_path_records_sha256(emu: Emulator, api: httpx.Client) -> None:
    """Slot, presigned POST (204), and the object is recorded with size and sha256."""
    uri = upload(api)
    assert uri.startswith("runway://upload/")
    expected = {
        "filename": "shot.jpg",
        "size": len(PAYLOAD),
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
    }
    assert {uri: expected} == emu.objects()
    assert {uri: expected} == httpx.get(f"{emu.url}/_emulator/objects").json()


def test_upload_lands_in_storage_dir(make_emu: Any, tmp_path: Path) -> None:
    """With storage_dir the stored file holds exactly the uploaded bytes."""
    emu = make_emu(storage_dir=tmp_path / "store")
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        uri = upload(client)
    stored = emu.storage.objects()[uri]
    assert stored.path is not None
    assert tmp_path / "store" == stored.path.parent
    assert PAYLOAD == stored.path.read_bytes()


def test_keep_files_false_only_hashes(make_emu: Any, tmp_path: Path) -> None:
    """keep_files=False records size and sha256 but writes no file."""
    emu = make_emu(storage_dir=tmp_path, keep_files=False)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        uri = upload(client)
    assert hashlib.sha256(PAYLOAD).hexdigest() == emu.objects()[uri]["sha256"]
    assert [] == list(tmp_path.iterdir())


def test_slot_reply_looks_like_a_presigned_post(emu: Emulator, api: httpx.Client) -> None:
    """The slot has an uploadUrl on the emulator, key/policy/signature fields, and a runway URI."""
    s = slot(api, "clip.mov")
    policy = json.loads(base64.b64decode(s["fields"]["policy"]))
    assert s["uploadUrl"].startswith(f"{emu.url}/_storage/upload/")
    assert {"key", "policy", "x-amz-signature", "Content-Type"} <= set(s["fields"])
    assert "video/quicktime" == s["fields"]["Content-Type"]
    assert ["content-length-range", 512, 200 * 1024 * 1024] in policy["conditions"]


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "ab", "type": "ephemeral"},
        {"filename": "a" * 252 + ".jpeg", "type": "ephemeral"},
        {"filename": "anim.gif", "type": "ephemeral"},
        {"filename": "shot.jpg", "type": "persistent"},
        {"type": "ephemeral"},
    ],
)
def test_create_upload_validates_body(api: httpx.Client, body: dict[str, Any]) -> None:
    """Filename of 3-255 chars with a media extension and type "ephemeral" are required."""
    reply = api.post("/v1/uploads", json=body)
    assert 400 == reply.status_code
    assert reply.json()["issues"]


def test_upload_file_before_fields_is_refused(api: httpx.Client) -> None:
    """A file sent before the policy fields is a 400."""
    s = slot(api)
    reply = post_form(s["uploadUrl"], [("file", PAYLOAD, "shot.jpg"), *fields_of(s)])
    assert 400 == reply.status_code


def test_upload_missing_policy_field_is_refused(api: httpx.Client) -> None:
    """Leaving out one policy field is a 400 naming it."""
    s = slot(api)
    parts = [p for p in fields_of(s) if p[0] != "x-amz-signature"]
    reply = post_form(s["uploadUrl"], [*parts, ("file", PAYLOAD, "shot.jpg")])
    assert 400 == reply.status_code
    assert "x-amz-signature" in reply.text


def test_upload_altered_field_is_refused(api: httpx.Client) -> None:
    """A policy field must come back verbatim."""
    s = slot(api)
    parts = [(k, b"uploads/other.jpg" if k == "key" else v, f) for k, v, f in fields_of(s)]
    reply = post_form(s["uploadUrl"], [*parts, ("file", PAYLOAD, "shot.jpg")])
    assert 400 == reply.status_code


def test_upload_field_after_file_is_refused(emu: Emulator, api: httpx.Client) -> None:
    """The file must be the last part; nothing is stored otherwise."""
    s = slot(api)
    reply = post_form(
        s["uploadUrl"], [*fields_of(s), ("file", PAYLOAD, "shot.jpg"), ("extra", b"x", None)]
    )
    assert 400 == reply.status_code
    assert {} == emu.objects()


def test_upload_too_small_is_refused(api: httpx.Client) -> None:
    """A file under 512 bytes answers 400 EntityTooSmall."""
    s = slot(api)
    reply = httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", b"x" * 511)})
    assert 400 == reply.status_code
    assert "EntityTooSmall" in reply.text


def test_upload_too_large_is_refused_while_streaming(make_emu: Any) -> None:
    """A file over max_size answers 400 EntityTooLarge, and the connection can still read it."""
    emu = make_emu(max_size=4096)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        s = slot(client)
        reply = httpx.post(
            s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", b"y" * 40_000)}
        )
    assert 400 == reply.status_code
    assert "EntityTooLarge" in reply.text
    assert {} == emu.objects()


def test_sizes_at_the_limits_are_accepted(make_emu: Any) -> None:
    """A file of exactly min_size or exactly max_size bytes is stored."""
    emu = make_emu(max_size=4096)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        small, large = upload(client, b"s" * 512), upload(client, b"l" * 4096)
    assert (512, 4096) == (emu.objects()[small]["size"], emu.objects()[large]["size"])


def test_upload_declared_over_200mib_is_refused_before_the_body(
    emu: Emulator, api: httpx.Client
) -> None:
    """A Content-Length beyond 200 MiB is answered from the headers alone, no body sent."""
    s = slot(api)
    path = "/" + s["uploadUrl"].split("/", 3)[3]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {300 * 1024 * 1024}\r\n"
        "Content-Type: multipart/form-data; boundary=abc\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400")
    assert "EntityTooLarge" in answer


def test_expired_slot_is_403(emu: Emulator, api: httpx.Client, clock: FakeClock) -> None:
    """A slot used after slot_ttl answers 403."""
    s = slot(api)
    clock.advance(3601)
    reply = httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", PAYLOAD)})
    assert 403 == reply.status_code


def test_slot_can_be_used_once(api: httpx.Client) -> None:
    """A second POST to a used slot (or to an unknown one) answers 403."""
    s = slot(api)
    first = httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", PAYLOAD)})
    second = httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", PAYLOAD)})
    unknown = httpx.post(
        s["uploadUrl"] + "x", data=s["fields"], files={"file": ("shot.jpg", PAYLOAD)}
    )
    assert (204, 403, 403) == (first.status_code, second.status_code, unknown.status_code)


def test_chunked_upload_is_refused(api: httpx.Client) -> None:
    """Like S3, the presigned POST needs a Content-Length (411 for a chunked body)."""
    s = slot(api)
    body, ctype = form([*fields_of(s), ("file", PAYLOAD, "shot.jpg")])
    reply = httpx.post(s["uploadUrl"], content=iter([body]), headers={"Content-Type": ctype})
    assert 411 == reply.status_code


def test_storage_needs_no_authorization(emu: Emulator, api: httpx.Client) -> None:
    """The presigned POST works without any Authorization header (httpx.post sends none)."""
    upload(api)
    assert 1 == emu.stats()["uploads_completed"]


def test_large_upload_streams_with_flat_memory(
    emu: Emulator, api: httpx.Client, tmp_path: Path
) -> None:
    """A 50 MiB upload raises the process's peak RSS by far less than the body size."""
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:
        for i in range(50):
            f.write(hashlib.sha256(bytes([i])).digest() * 32768)
    s = slot(api, "big.mp4")
    with PeakRss() as rss, open(big, "rb") as source:
        reply = httpx.post(
            s["uploadUrl"], data=s["fields"], files={"file": ("big.mp4", source)}, timeout=60
        )
    assert 204 == reply.status_code
    assert 50 * 1024 * 1024 == emu.objects()[s["runwayUri"]]["size"]
    assert rss.growth < 16 * 1024 * 1024
