"""The status page of a daemon running on the emulator: 20 files dropped, some failing, seen in a
real headless chromium (skipped without one), the JSON API compared with `runwatchd status`,
and retry refused without the token, resubmitted with it.

`RUNWATCHD_WRITE_SCREENSHOT=1` also writes docs/status-page.png, the README's screenshot.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_helpers import Browser, browser, write_screenshot
from cli_helpers import cli_env, run_cli
from daemon_helpers import KEY, Runner
from helpers import drop, wait_for

from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.service.web.daemon_source import start_web_for

TOKEN = "e2e-page-token-3c8f1a9b2d"
HOSTILE = "<img src=x onerror=alert(1)>.png"
FINAL = {"uploaded", "succeeded", "failed", "attention"}


def rule(prompt: str) -> dict[str, Any]:
    return {"endpoint": "image_to_video", "output_dir": "renders",
            "request": {"model": "gen4.5", "promptText": prompt, "ratio": "1280:720",
                        "duration": 5}}


class Farm:
    """A daemon with its page on the emulator, watching stills/, refused/ and plain/."""

    def __init__(self, root: Path, runner: Runner) -> None:
        self.root = root
        self.stills, self.refused, self.plain = (root / n for n in ("stills", "refused", "plain"))
        for folder in (self.stills, self.refused, self.plain):
            folder.mkdir()
        token_file = root / "web-token"
        token_file.write_text(TOKEN + "\n", encoding="utf-8")
        token_file.chmod(0o600)
        cfg = runner.config([
            {"path": str(self.stills), "rule": rule("{stem} comes to life")},
            {"path": str(self.refused), "rule": rule("FAIL:INPUT_PREPROCESSING.SAFETY {stem}")},
            {"path": str(self.plain)},
        ], rescan_interval=0)
        cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(
            cfg.daemon, web="127.0.0.1:0", web_token_file=token_file))
        self.daemon = runner.start(cfg, poll_interval=0.1)
        server = start_web_for(self.daemon)
        assert server is not None and server.url is not None
        self.server, self.base = server, server.url
        self.http = httpx.Client(base_url=self.base, timeout=10)
        self.config_file = root / "runwatchd.toml"
        self.config_file.write_text(f'[runway]\nstate_dir = "{runner.state}"\n', encoding="utf-8")

    def drop_twenty(self) -> dict[str, str]:
        """8 stills that generate, 4 the emulator refuses, 5 plain uploads, 2 too small and a
        hostile name: file name -> the display state it must end in."""
        expected = {}
        for i in range(8):
            make_png(self.stills / f"still_{i:02d}.png", width=16, height=16, seed=i)
            expected[f"still_{i:02d}.png"] = "succeeded"
        for i in range(4):
            make_png(self.refused / f"refused_{i}.png", width=16, height=16, seed=50 + i)
            expected[f"refused_{i}.png"] = "failed"
        for i in range(5):
            drop(self.plain / f"clip_{i}.mp4", 2000)
            expected[f"clip_{i}.mp4"] = "uploaded"
        for i in range(2):
            drop(self.plain / f"tiny_{i}.mov", 100)
            expected[f"tiny_{i}.mov"] = "failed"
        make_png(self.plain / HOSTILE, width=16, height=16, seed=99)
        expected[HOSTILE] = "uploaded"
        return expected

    def files(self) -> dict[str, dict[str, Any]]:
        reply = self.http.get("/api/files", params={"limit": 100})
        return {f["name"]: f for f in reply.json()["files"]}

    def settled(self, count: int) -> dict[str, dict[str, Any]] | None:
        files = self.files()
        done = len(files) == count and all(f["display"] in FINAL for f in files.values())
        return files if done else None

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    """The daemon and its page; folders under a short temporary path (it shows in the
    screenshot), state under tmp_path."""
    with (Emulator(api_secret=KEY, task_seconds=0.2, pending_seconds=0.05,
                   max_concurrent_tasks=20) as emu,
          tempfile.TemporaryDirectory(prefix="hot-") as hot):
        runner = Runner(tmp_path, emu)
        f = Farm(Path(hot), runner)
        try:
            yield f
        finally:
            f.close()
            runner.close()


def test_twenty_files_end_with_their_states_and_the_api_matches_status(farm: Farm) -> None:
    """Every dropped file reaches its final state in /api/files, which agrees with
    `runwatchd status --json`; failures carry their reasons."""
    expected = farm.drop_twenty()
    files = wait_for(lambda: farm.settled(20), 60)
    assert files, f"not settled: {farm.files()}"
    assert expected == {name: f["display"] for name, f in files.items()}
    assert "(INPUT_PREPROCESSING.SAFETY)" in files["refused_0.png"]["reason"]
    assert "below Runway's minimum" in files["tiny_0.mov"]["reason"]
    assert ["renders/still_00.png.mp4"] == [o["name"] for o in files["still_00.png"]["outputs"]]
    assert 200 == farm.http.get(files["still_00.png"]["outputs"][0]["url"]).status_code

    status = json.loads(run_cli(["status", "--json", "-c", str(farm.config_file)],
                                cli_env(farm.root), farm.root).stdout)
    summary = farm.http.get("/api/summary").json()
    assert status["files"] == summary["states"]
    by_path = {f["path"]: f for f in files.values()}
    assert [(p["path"], p["state"]) for p in status["recent_failures"]] == [
        (p["path"], by_path[p["path"]]["state"]) for p in status["recent_failures"]]
    assert {"succeeded": 8, "failed": 6, "uploaded": 6} == {
        k: v for k, v in summary["totals"].items() if v}
    assert [True, True, True] == [o["alive"] for o in summary["health"]["observers"]]


def test_retry_needs_the_token_and_then_resubmits(farm: Farm) -> None:
    """Without the token a retry is 401 and changes nothing; with it the generation runs again."""
    make_png(farm.refused / "again.png", width=16, height=16, seed=7)
    first = wait_for(lambda: (f := farm.files().get("again.png")) and f["display"] == "failed"
                     and f, 30)
    assert first
    path, task = first["path"], first["task"]["id"]
    assert 401 == farm.http.post("/api/retry", json={"path": path}).status_code
    assert task == farm.files()["again.png"]["task"]["id"]
    reply = farm.http.post("/api/retry", json={"path": path},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert 202 == reply.status_code
    again = wait_for(lambda: (f := farm.files()["again.png"])["display"] == "failed"
                     and f["task"]["id"] not in (None, task) and f, 30)
    assert again, farm.files()["again.png"]


@pytest.fixture
def page() -> Iterator[Browser]:
    """A headless chromium that reaches nothing but 127.0.0.1."""
    with browser(width=1280, height=1100) as b:
        yield b


def test_the_page_shows_every_file_its_state_and_each_failures_reason(farm: Farm,
                                                                      page: Browser) -> None:
    """In the browser: all 20 files with their final states, every failure with its reason,
    the hostile name as text, and no request to anything but the daemon."""
    expected = farm.drop_twenty()
    page.open(farm.base + "/")
    rows = page.wait(lambda: (r := page.rows()) and len(r) == 20
                     and all(row["display"] in FINAL for row in r.values()) and r, 60)
    assert rows, page.rows()
    assert expected == {name: row["display"] for name, row in rows.items()}
    failures = {name: row["reason"] for name, row in rows.items() if row["display"] == "failed"}
    assert 6 == len(failures) and all(failures.values()), failures
    assert None is page.alert_text()
    assert 0 == page.js("return document.querySelectorAll('img[src=\"x\"]').length")
    assert [] == [u for u in page.requests() if not u.startswith(farm.base + "/")]
    page.wait(lambda: page.js("return [...document.images].every((i) => i.complete)"))
    write_screenshot(page)


def test_retry_from_the_page_is_refused_without_the_token(farm: Farm, page: Browser) -> None:
    """Clicking retry shows the 401 and changes nothing; with the token entered, it resubmits."""
    make_png(farm.refused / "again.png", width=16, height=16, seed=7)
    first = wait_for(lambda: (f := farm.files().get("again.png")) and f["display"] == "failed"
                     and f, 30)
    assert first
    page.open(farm.base + "/")
    assert page.wait(lambda: page.rows()["again.png"]["retry"])
    click = "document.querySelector('article.file[data-id=\"%s\"] button.retry').click()"
    page.js(click % first["id"])
    assert page.wait(lambda: "401" in page.js(
        "return document.getElementById('message').textContent"))
    assert first["task"] == farm.files()["again.png"]["task"]
    page.driver.find_element("id", "token").send_keys(TOKEN)
    page.js("document.getElementById('token-save').click()")
    page.js(click % first["id"])
    assert page.wait(lambda: farm.files()["again.png"]["task"]["id"] not in (
        None, first["task"]["id"]), 30)
