"""The Runway emulator over real sockets: protocol, strictness, lifecycle, faults, counters."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FakeClock, PeakRss

from runwatchd.emulator import API_VERSION, Emulator

KEY = "test-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
PAYLOAD = bytes(range(256)) * 8  # 2 KiB, above the 512 B minimum


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_790_000_000.0)


@pytest.fixture
def make_emu(clock: FakeClock) -> Iterator[Any]:
    """Start emulators with test defaults; every one is stopped at the end."""
    started: list[Emulator] = []

    def make(**kw: Any) -> Emulator:
        kw.setdefault("api_secret", KEY)
        kw.setdefault("clock", clock)
        kw.setdefault("task_seconds", 10.0)
        kw.setdefault("pending_seconds", 1.0)
        emu = Emulator(**kw).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(make_emu: Any) -> Emulator:
    return make_emu()


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, headers=HEADERS, timeout=10) as client:
        yield client


def slot(client: httpx.Client, filename: str = "shot.jpg") -> dict[str, Any]:
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
    body, ctype = form(parts)
    return httpx.post(url, content=body, headers={"Content-Type": ctype})


def fields_of(s: dict[str, Any]) -> list[tuple[str, bytes, str | None]]:
    return [(k, v.encode(), None) for k, v in s["fields"].items()]


def i2v(uri: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gen4_turbo", "promptImage": uri, "ratio": "1280:720", **extra}


# -- auth and version --------------------------------------------------------------------------


def test_api_rejects_missing_or_wrong_key(emu: Emulator) -> None:
    """Without the right bearer key every /v1 call is 401 with an error body, and is counted."""
    no_key = httpx.get(f"{emu.url}/v1/organization", headers={"X-Runway-Version": API_VERSION})
    wrong = httpx.get(
        f"{emu.url}/v1/organization", headers={**HEADERS, "Authorization": "Bearer nope"}
    )
    assert (401, 401) == (no_key.status_code, wrong.status_code)
    assert "error" in wrong.json()
    assert 2 == emu.stats()["auth_failures"]


def test_api_requires_exact_version_header(emu: Emulator) -> None:
    """A missing or different X-Runway-Version is a 400."""
    auth = {"Authorization": f"Bearer {KEY}"}
    missing = httpx.get(f"{emu.url}/v1/organization", headers=auth)
    wrong = httpx.get(
        f"{emu.url}/v1/organization", headers={**auth, "X-Runway-Version": "2024-09-13"}
    )
    assert (400, 400) == (missing.status_code, wrong.status_code)


def test_organization_reports_credits(api: httpx.Client) -> None:
    """GET /v1/organization has creditBalance, tier and usage."""
    body = api.get("/v1/organization").json()
    assert {"creditBalance", "tier", "usage"} <= set(body)
    assert 100_000 == body["creditBalance"]


def test_the_secret_is_never_logged(make_emu: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Debug logs of a full session never contain the API secret."""
    caplog.set_level("DEBUG")
    emu = make_emu(api_secret="sekrit-value-123")
    headers = {**HEADERS, "Authorization": "Bearer sekrit-value-123"}
    with httpx.Client(base_url=emu.url, headers=headers) as client:
        upload(client)
        client.get("/v1/organization", headers={"Authorization": "Bearer wrong"})
    assert "sekrit-value-123" not in caplog.text


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


# -- generation --------------------------------------------------------------------------------


def test_generation_returns_id_and_cost(emu: Emulator, api: httpx.Client) -> None:
    """A valid image_to_video is accepted, charged, and counted against its input URI."""
    uri = upload(api)
    body = api.post("/v1/image_to_video", json=i2v(uri, duration=5)).json()
    assert {"id", "estimatedCost"} == set(body)
    stats = emu.stats()
    assert 100_000 - body["estimatedCost"]["credits"] == stats["credit_balance"]
    assert {uri: 1} == stats["tasks_per_input_uri"]


@pytest.mark.parametrize(
    ("endpoint", "body", "paths"),
    [
        ("image_to_video", {"model": "gen4_turbo"}, [["promptImage"]]),
        (
            "image_to_video",
            {"model": "gen4_turbo", "promptImage": "https://x/a.jpg", "promptText": ""},
            [["promptText"]],
        ),
        (
            "image_to_video",
            {"model": "m", "promptImage": "https://x/a.jpg", "duration": "5"},
            [["duration"]],
        ),
        ("video_to_video", {"model": "aleph2", "videoUri": "https://x/a.mp4"}, [["promptText"]]),
        (
            "character_performance",
            {
                "model": "act_two",
                "character": {"type": "x", "uri": "https://x/a.mp4"},
                "reference": {"type": "video", "uri": "https://x/b.mp4"},
            },
            [["character", "type"]],
        ),
        (
            "voice_dubbing",
            {"model": "eleven_voice_dubbing", "audioUri": "https://x/a.mp3"},
            [["targetLang"]],
        ),
        ("text_to_speech", {"model": "eleven_multilingual_v2", "promptText": "hi"}, [["voice"]]),
    ],
)
def test_generation_validates_required_fields(
    api: httpx.Client, endpoint: str, body: dict, paths: list
) -> None:
    """Missing or ill-typed fields answer 400 with an issue at each path."""
    reply = api.post(f"/v1/{endpoint}", json=body)
    assert 400 == reply.status_code
    assert paths == [i["path"] for i in reply.json()["issues"]]


def test_unknown_runway_uri_is_refused_at_any_depth(api: httpx.Client) -> None:
    """A runway:// URI that was never uploaded is a 400 issue, even nested in an object."""
    body = {
        "model": "act_two",
        "character": {"type": "image", "uri": "runway://upload/nope"},
        "reference": {"type": "video", "uri": "https://x/b.mp4"},
    }
    reply = api.post("/v1/character_performance", json=body)
    assert 400 == reply.status_code
    assert [["character", "uri"]] == [i["path"] for i in reply.json()["issues"]]


def test_expired_runway_uri_is_refused(make_emu: Any, clock: FakeClock) -> None:
    """A URI older than uri_ttl is refused like an unknown one."""
    emu = make_emu(uri_ttl=60)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        uri = upload(client)
        assert 200 == client.post("/v1/image_to_video", json=i2v(uri)).status_code
        clock.advance(61)
        reply = client.post("/v1/image_to_video", json=i2v(uri))
    assert 400 == reply.status_code
    assert [["promptImage"]] == [i["path"] for i in reply.json()["issues"]]


def test_not_enough_credits(make_emu: Any) -> None:
    """A task costing more than the balance answers Runway's credits message."""
    emu = make_emu(credits=10)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        reply = client.post("/v1/image_to_video", json=i2v("https://x/a.jpg", duration=5))
    assert 400 == reply.status_code
    assert "You do not have enough credits to run this task." == reply.json()["error"]


# -- task lifecycle ----------------------------------------------------------------------------


def status(client: httpx.Client, task_id: str) -> dict[str, Any]:
    reply = client.get(f"/v1/tasks/{task_id}")
    assert 200 == reply.status_code, reply.text
    return reply.json()


def test_task_goes_pending_running_succeeded(api: httpx.Client, clock: FakeClock) -> None:
    """PENDING, then RUNNING with progress, then SUCCEEDED with output URLs, by the clock."""
    task_id = api.post("/v1/image_to_video", json=i2v(upload(api))).json()["id"]
    assert "PENDING" == status(api, task_id)["status"]
    clock.advance(1 + 5)
    running = status(api, task_id)
    assert ("RUNNING", 0.5) == (running["status"], running["progress"])
    clock.advance(5)
    done = status(api, task_id)
    assert "SUCCEEDED" == done["status"]
    assert [f"{api.base_url}/_outputs/{task_id}/0.mp4".replace("//_", "/_")] == done["output"]


def test_tasks_beyond_concurrency_are_throttled(make_emu: Any, clock: FakeClock) -> None:
    """With max_concurrent_tasks=1 a second task is THROTTLED until the first finishes."""
    emu = make_emu(max_concurrent_tasks=1, pending_seconds=0)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        first = client.post(
            "/v1/text_to_video", json={"model": "veo3.1", "promptText": "a"}
        ).json()["id"]
        second = client.post(
            "/v1/text_to_video", json={"model": "veo3.1", "promptText": "b"}
        ).json()["id"]
        assert ("RUNNING", "THROTTLED") == (
            status(client, first)["status"],
            status(client, second)["status"],
        )
        clock.advance(10)
        assert ("SUCCEEDED", "RUNNING") == (
            status(client, first)["status"],
            status(client, second)["status"],
        )
        clock.advance(10)
        assert "SUCCEEDED" == status(client, second)["status"]
    assert {"SUCCEEDED": 2} == {k: v for k, v in emu.stats()["tasks_by_status"].items() if v}


def test_fail_marker_ends_failed_with_code(api: httpx.Client, clock: FakeClock) -> None:
    """A "FAIL:" prompt ends FAILED with failure text; a code after the marker is used."""
    plain = api.post(
        "/v1/text_to_image", json={"model": "gen4_image", "promptText": "FAIL: nope"}
    ).json()["id"]
    coded = api.post(
        "/v1/text_to_image",
        json={"model": "gen4_image", "promptText": "FAIL:INTERNAL.BAD_OUTPUT.CODE01 x"},
    ).json()["id"]
    clock.advance(20)
    first, second = status(api, plain), status(api, coded)
    assert ("FAILED", "SAFETY.INPUT.TEXT") == (first["status"], first["failureCode"])
    assert ("FAILED", "INTERNAL.BAD_OUTPUT.CODE01") == (second["status"], second["failureCode"])
    assert first["failure"]


def test_fail_prompts_list(make_emu: Any, clock: FakeClock) -> None:
    """Any configured fail_prompts substring makes the task fail."""
    emu = make_emu(fail_prompts=["explode"])
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        task_id = client.post(
            "/v1/sound_effect",
            json={"model": "eleven_text_to_sound_v2", "promptText": "an explode"},
        ).json()["id"]
        clock.advance(20)
        assert "FAILED" == status(client, task_id)["status"]


def test_delete_cancels_then_deletes(emu: Emulator, api: httpx.Client, clock: FakeClock) -> None:
    """DELETE on a waiting task cancels (and refunds) it; DELETE again removes it (404)."""
    task_id = api.post("/v1/image_to_video", json=i2v(upload(api))).json()["id"]
    assert 204 == api.delete(f"/v1/tasks/{task_id}").status_code
    clock.advance(30)
    assert "CANCELLED" == status(api, task_id)["status"]
    assert 100_000 == emu.stats()["credit_balance"]
    assert 204 == api.delete(f"/v1/tasks/{task_id}").status_code
    assert 404 == api.get(f"/v1/tasks/{task_id}").status_code


def test_task_seconds_zero_succeeds_at_once(make_emu: Any) -> None:
    """With task_seconds=0 a task is SUCCEEDED on the first poll."""
    emu = make_emu(task_seconds=0, pending_seconds=None)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        task_id = client.post(
            "/v1/text_to_image", json={"model": "gen4_image", "promptText": "x"}
        ).json()["id"]
        assert "SUCCEEDED" == status(client, task_id)["status"]


def test_outputs_are_downloadable(make_emu: Any, clock: FakeClock) -> None:
    """Each output URL serves deterministic bytes with type and length (a real PNG for images)."""
    emu = make_emu(outputs_per_task=2)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        task_id = client.post(
            "/v1/text_to_image", json={"model": "gen4_image", "promptText": "x"}
        ).json()["id"]
        url = f"{emu.url}/_outputs/{task_id}/0.png"
        assert 404 == httpx.get(url).status_code
        clock.advance(20)
        outputs = status(client, task_id)["output"]
        first, again = httpx.get(outputs[0]), httpx.get(outputs[0])
    assert [url, f"{emu.url}/_outputs/{task_id}/1.png"] == outputs
    assert ("image/png", b"\x89PNG") == (first.headers["content-type"], first.content[:4])
    assert str(len(first.content)) == first.headers["content-length"]
    assert first.content == again.content


# -- faults ------------------------------------------------------------------------------------


def test_error_rate_answers_configured_status(make_emu: Any) -> None:
    """error_rate=1 answers every in-scope request with error_status."""
    emu = make_emu(faults={"error_rate": 1.0, "error_status": 502})
    reply = httpx.get(f"{emu.url}/v1/organization", headers=HEADERS)
    assert 502 == reply.status_code
    assert {"error": 1} == emu.stats()["faults_injected"]


def test_rate_limit_every_nth_with_retry_after(make_emu: Any) -> None:
    """rate_limit_every=3 makes every third request a 429 with Retry-After."""
    emu = make_emu(faults={"rate_limit_every": 3, "retry_after": 7})
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        replies = [client.get("/v1/organization") for _ in range(6)]
    assert [200, 200, 429, 200, 200, 429] == [r.status_code for r in replies]
    assert "7" == replies[2].headers["retry-after"]


def test_rate_limit_burst_then_recovers(emu: Emulator, api: httpx.Client) -> None:
    """set_faults(rate_limit_burst=2): the next two requests are 429, then service resumes."""
    emu.set_faults(rate_limit_burst=2)
    assert [429, 429, 200] == [api.get("/v1/organization").status_code for _ in range(3)]


def test_drop_closes_without_reply(make_emu: Any) -> None:
    """drop_rate=1 closes API connections without a response."""
    emu = make_emu(faults={"drop_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{emu.url}/v1/organization", headers=HEADERS)


def test_drop_mid_upload_body(emu: Emulator, api: httpx.Client) -> None:
    """A storage drop reads part of the body, then closes: the client sees a transport error."""
    s = slot(api, "clip.mp4")
    emu.set_faults(drop_rate=1.0, scope="storage")
    with pytest.raises(httpx.TransportError):
        httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("clip.mp4", b"z" * 3_000_000)})
    stats = emu.stats()
    assert 0 < stats["bytes_received"] < 3_000_000
    assert 0 == stats["uploads_completed"]


def test_drop_after_creates_the_task_anyway(emu: Emulator, api: httpx.Client) -> None:
    """drop_after_rate: the generation takes effect but its reply is lost (the uncertain case)."""
    uri = upload(api)
    emu.set_faults(drop_after_rate=1.0, scope="tasks")
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/v1/image_to_video", json=i2v(uri))
    assert 1 == emu.stats()["tasks_created"]


def test_delay_slows_every_call(make_emu: Any) -> None:
    """delay adds at least that many seconds to a call."""
    emu = make_emu(faults={"delay": 0.2})
    start = time.monotonic()
    assert 200 == httpx.get(f"{emu.url}/v1/organization", headers=HEADERS).status_code
    assert time.monotonic() - start >= 0.2


def test_slow_reply_outlasts_client_timeout(make_emu: Any) -> None:
    """slow_rate=1 with slow_seconds beyond the client's timeout makes it time out."""
    emu = make_emu(faults={"slow_rate": 1.0, "slow_seconds": 5.0})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{emu.url}/v1/organization", headers=HEADERS, timeout=0.3)


def test_bad_json_reply(make_emu: Any) -> None:
    """bad_json_rate=1 answers 200 with a body that is not JSON."""
    emu = make_emu(faults={"bad_json_rate": 1.0})
    reply = httpx.get(f"{emu.url}/v1/organization", headers=HEADERS)
    assert 200 == reply.status_code
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_expire_slots_expires_every_slot(emu: Emulator, api: httpx.Client) -> None:
    """expire_slots=True: every new slot answers 403 at storage, and each is counted."""
    emu.set_faults(expire_slots=True)
    statuses = []
    for _ in range(2):
        s = slot(api)
        files = {"file": ("shot.jpg", PAYLOAD)}
        statuses.append(httpx.post(s["uploadUrl"], data=s["fields"], files=files).status_code)
    assert [403, 403] == statuses
    assert 2 == emu.stats()["faults_injected"]["expired_slot"]


def test_expire_next_slots(emu: Emulator, api: httpx.Client) -> None:
    """expire_next_slots=1: the next slot is born expired (403), the one after works."""
    emu.set_faults(expire_next_slots=1)
    s = slot(api)
    reply = httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", PAYLOAD)})
    assert 403 == reply.status_code
    assert upload(api).startswith("runway://")


def test_no_credits_fault(emu: Emulator, api: httpx.Client) -> None:
    """no_credits refuses generation with Runway's message; uploads go on."""
    emu.set_faults(no_credits=True)
    uri = upload(api)
    reply = api.post("/v1/image_to_video", json=i2v(uri))
    assert (400, "You do not have enough credits to run this task.") == (
        reply.status_code,
        reply.json()["error"],
    )


def test_scope_limits_faults(make_emu: Any) -> None:
    """scope="storage" leaves the API untouched."""
    emu = make_emu(faults={"error_rate": 1.0, "scope": "storage"})
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        s = slot(client)
        reply = httpx.post(s["uploadUrl"], data=s["fields"], files={"file": ("shot.jpg", PAYLOAD)})
    assert 503 == reply.status_code
    assert "<Error>" in reply.text


def test_faults_are_deterministic_with_a_seed(make_emu: Any) -> None:
    """Two emulators with the same seed fail the same requests."""
    runs = []
    for _ in range(2):
        emu = make_emu(faults={"error_rate": 0.5, "seed": 42})
        with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
            runs.append([client.get("/v1/organization").status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert {200, 503} == set(runs[0])


def test_burst_is_not_rearmed_by_other_changes(emu: Emulator, api: httpx.Client) -> None:
    """Changing another fault key keeps what is left of a burst instead of re-arming it."""
    emu.set_faults(rate_limit_burst=1)
    assert 429 == api.get("/v1/organization").status_code
    emu.set_faults(delay=0.0)
    assert 200 == api.get("/v1/organization").status_code
    assert 0 == emu.stats()["faults"]["rate_limit_burst"]


def test_faults_settable_over_http(emu: Emulator, api: httpx.Client) -> None:
    """POST /_emulator/faults changes faults live; unknown keys are a 400."""
    assert (
        200 == httpx.post(f"{emu.url}/_emulator/faults", json={"rate_limit_burst": 1}).status_code
    )
    assert 400 == httpx.post(f"{emu.url}/_emulator/faults", json={"eror_rate": 1}).status_code
    assert [429, 200] == [api.get("/v1/organization").status_code for _ in range(2)]


# -- counters, keep-alive, lifecycle -----------------------------------------------------------


def test_stats_count_requests_and_reset(emu: Emulator, api: httpx.Client) -> None:
    """Requests are counted by route and status; POST /_emulator/reset clears counters, faults."""
    upload(api)
    api.get("/v1/tasks/nope")
    emu.set_faults(error_rate=1.0)
    stats = httpx.get(f"{emu.url}/_emulator/stats").json()
    assert {"200": 1} == stats["requests"]["POST /v1/uploads"]
    assert {"204": 1} == stats["requests"]["POST /_storage/upload"]
    assert {"404": 1} == stats["requests"]["GET /v1/tasks/{id}"]
    assert (2, 1, 1) == (
        stats["api_calls_total"],
        stats["uploads_created"],
        stats["uploads_completed"],
    )
    assert len(PAYLOAD) == stats["bytes_stored"]
    httpx.post(f"{emu.url}/_emulator/reset")
    assert 200 == api.get("/v1/organization").status_code
    assert {"GET /v1/organization": {"200": 1}} == emu.stats()["requests"]


def test_keep_alive_serves_several_requests_per_connection(emu: Emulator) -> None:
    """Two requests on one socket get two complete answers (HTTP/1.1 keep-alive)."""
    request = (
        f"GET /v1/organization HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"X-Runway-Version: {API_VERSION}\r\n\r\n"
    )
    with (
        socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock,
        sock.makefile("rb") as reader,
    ):
        for _ in range(2):
            sock.sendall(request.encode())
            assert reader.readline().startswith(b"HTTP/1.1 200")
            headers = {}
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            assert "creditBalance" in json.loads(reader.read(int(headers["content-length"])))


def test_stop_ends_idle_connections_and_threads(make_emu: Any) -> None:
    """stop() returns promptly with a keep-alive connection open and leaves no emulator thread."""
    emu = make_emu()
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        client.get("/v1/organization")
        emu.stop()
    assert [] == [t.name for t in threading.enumerate() if t.name.startswith("runwatchd-emulator")]


def test_serve_forever_prints_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`serve_forever` prints its URL and key, serves, and exits cleanly on SIGTERM."""
    code = "from runwatchd.emulator import serve_forever; serve_forever('127.0.0.1', 0, 'cli-key')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("runwatchd emulator listening on http://127.0.0.1:")
        assert "(API key: cli-key)" in line
        url = line.split()[4]
        headers = {"Authorization": "Bearer cli-key", "X-Runway-Version": API_VERSION}
        assert 200 == httpx.get(f"{url}/v1/organization", headers=headers).status_code
        proc.terminate()
        assert 0 == proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
