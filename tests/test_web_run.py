"""`runwatchd run` with `[daemon] web`: the page starts and stops with the daemon, and serves
/metrics on the same listener when `[daemon] metrics` names the same address."""

from __future__ import annotations

import socket

import httpx
import pytest
from daemon_process import Setup
from helpers import drop, wait_for
from helpers import has_sidecar as done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



def write_web_config(setup: Setup, address: str) -> None:
    """Setup's config with the page and the metrics on `address`."""
    setup.write_config()
    text = setup.config.read_text(encoding="utf-8")
    setup.config.write_text(text.replace(
        "[daemon]\n", f'[daemon]\nweb = "{address}"\nmetrics = "{address}"\n', 1),
        encoding="utf-8")


def test_run_serves_the_page_and_metrics_on_one_port(daemon_setup: Setup) -> None:
    """The page's API answers while the daemon runs, /metrics too on the same address, and the
    listener goes away with the daemon (exit 0)."""
    address = f"127.0.0.1:{free_port()}"
    write_web_config(daemon_setup, address)
    daemon = daemon_setup.start()
    shot = drop(daemon_setup.hot / "shot.jpg")
    assert wait_for(lambda: done(shot), 20), daemon.log()
    with httpx.Client(base_url=f"http://{address}", timeout=5) as http:
        files = wait_for(lambda: [f for f in http.get("/api/files").json()["files"]
                                  if f["name"] == "shot.jpg" and f["display"] == "uploaded"], 10)
        assert files, http.get("/api/files").text
        assert "runwatchd_uploads_total" in http.get("/metrics").text
    assert 0 == daemon.stop(timeout=20)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{address}/api/summary", timeout=2)
