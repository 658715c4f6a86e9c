"""The emulator's faults over real sockets: errors, 429s, drops, delays, expired slots, credits."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from emulator_helpers import HEADERS, PAYLOAD, i2v, slot, upload

from runwatchd.emulator import Emulator

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
