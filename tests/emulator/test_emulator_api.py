"""The emulator over real sockets: auth and version, counters, keep-alive, start and stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_helpers import HEADERS, KEY, PAYLOAD, upload

from runwatchd.emulator import API_VERSION, Emulator

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


def test_organization_lists_the_current_models(api: httpx.Client) -> None:
    """Tier limits name the models of the shipped schemas, not retired ones such as upscale_v1."""
    models = api.get("/v1/organization").json()["tier"]["models"]
    assert {"gen4.5", "ruby", "magnific_video_upscaler_creative"} <= set(models)
    assert "upscale_v1" not in models
    assert {"maxConcurrentGenerations": 4, "maxDailyGenerations": 10_000} == models["ruby"]


def test_the_secret_is_never_logged(make_emu: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Debug logs of a full session never contain the API secret."""
    caplog.set_level("DEBUG")
    emu = make_emu(api_secret="sekrit-value-123")
    headers = {**HEADERS, "Authorization": "Bearer sekrit-value-123"}
    with httpx.Client(base_url=emu.url, headers=headers) as client:
        upload(client)
        client.get("/v1/organization", headers={"Authorization": "Bearer wrong"})
    assert "sekrit-value-123" not in caplog.text


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
