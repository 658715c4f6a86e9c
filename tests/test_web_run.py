"""`runwatchd run` with `[daemon] web`: the page starts and stops with the daemon, and serves
/metrics on the same listener when `[daemon] metrics` names the same address."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import drop, wait_for
from helpers import has_sidecar as done
from test_cli_daemon import KEY, Setup

from runwatchd.emulator import Emulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A config, a state dir and an environment pointing `runwatchd` at a fresh emulator."""
    with Emulator(api_secret=KEY) as emu:
        s = Setup(tmp_path, emu)
        yield s
        s.kill_all()


def write_web_config(setup: Setup, address: str) -> None:
    """Setup's config with the page and the metrics on `address`."""
    setup.write_config()
    text = setup.config.read_text(encoding="utf-8")
    setup.config.write_text(text.replace(
        "[daemon]\n", f'[daemon]\nweb = "{address}"\nmetrics = "{address}"\n', 1),
        encoding="utf-8")


def test_run_serves_the_page_and_metrics_on_one_port(setup: Setup) -> None:
    """The page's API answers while the daemon runs, /metrics too on the same address, and the
    listener goes away with the daemon (exit 0)."""
    address = f"127.0.0.1:{free_port()}"
    write_web_config(setup, address)
    daemon = setup.start()
    shot = drop(setup.hot / "shot.jpg")
    assert wait_for(lambda: done(shot), 20), daemon.log()
    with httpx.Client(base_url=f"http://{address}", timeout=5) as http:
        files = wait_for(lambda: [f for f in http.get("/api/files").json()["files"]
                                  if f["name"] == "shot.jpg" and f["display"] == "uploaded"], 10)
        assert files, http.get("/api/files").text
        assert "runwatchd_uploads_total" in http.get("/metrics").text
    assert 0 == daemon.stop(timeout=20)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{address}/api/summary", timeout=2)
