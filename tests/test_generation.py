"""Generation from folder rules, end to end: the `runwatchd` CLI in a subprocess, the emulator
in this process, counted by the emulator.

The child polls tasks every 0.1 s through RUNWATCHD_TASK_POLL_SECONDS, which tasks.py honours
below Runway's 5 s only because the base URL is the loopback emulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli
from helpers import wait_for

from runwatchd import fsutil
from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.generation.rules import RULES_FILENAME
from runwatchd.lifecycle import sidecar

SECRET = "generation-test-key"
RULE = """
[folder.rule]
endpoint = "image_to_video"
output_dir = "renders"
[folder.rule.request]
model = "gen4.5"
promptText = "{prompt}"
ratio = "1280:720"
duration = 5
"""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, task_seconds=0.2, pending_seconds=0.05,
                  max_concurrent_tasks=20) as emu:
        yield emu


class Cli:
    """A config with one hot folder (and its rule), and ways to run the CLI on it."""

    def __init__(self, tmp_path: Path, emulator: Emulator, prompt: str | None = "{stem} moves",
                 extra: str = "") -> None:
        self.tmp = tmp_path
        self.emu = emulator
        self.hot = tmp_path / "hot"
        self.hot.mkdir()
        self.config = tmp_path / "runwatchd.toml"
        rule = RULE.replace("{prompt}", prompt) if prompt is not None else ""
        self.config.write_text(
            f'[runway]\nstate_dir = "{tmp_path / "state"}"\nconcurrency = 8\n'
            '[defaults]\nsettle_seconds = 0.2\nrescan_interval = 0\n'
            f'[[folder]]\npath = "{self.hot}"\n{rule}{extra}', encoding="utf-8")
        self.env = cli_env(tmp_path, emulator.url, SECRET, RUNWATCHD_TASK_POLL_SECONDS="0.1")

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "-c", str(self.config)], self.env, self.tmp, timeout=timeout)

    def stills(self, n: int, folder: Path | None = None) -> list[Path]:
        out = []
        for i in range(n):
            path = (folder or self.hot) / f"shot{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            make_png(path, width=32, height=32, seed=i)
            out.append(path)
        return out

    def tasks_per_file(self) -> Counter[str]:
        """Tasks the emulator created, by the file name their input was uploaded as."""
        names = {uri: o["filename"] for uri, o in self.emu.objects().items()}
        per_uri = self.emu.stats()["tasks_per_input_uri"]
        counts: Counter[str] = Counter()
        for uri, n in per_uri.items():
            counts[names[uri]] += n
        return counts


def status_of(path: Path) -> str | None:
    data = sidecar.read_sidecar(path)
    return (data.get("task") or {}).get("status") if data else None


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if fsutil.TEMP_MARK in p.name]


def test_a_hundred_stills_give_a_hundred_tasks_outputs_and_sidecars(
        tmp_path: Path, emulator: Emulator) -> None:
    """100 stills in a rule folder: exactly 100 tasks (one per file), 100 outputs, 100 SUCCEEDED."""
    cli = Cli(tmp_path, emulator)
    shots = cli.stills(100)
    result = cli.run("scan")
    assert 0 == result.returncode, result.stderr[-3000:]
    assert 100 == emulator.stats()["tasks_created"]
    assert {s.name: 1 for s in shots} == dict(cli.tasks_per_file())
    assert ["SUCCEEDED"] * 100 == [status_of(s) for s in shots]
    assert sorted(f"{s.name}.mp4" for s in shots) == sorted(
        p.name for p in (cli.hot / "renders").iterdir())
    assert [f"renders/{shots[7].name}.mp4"] == sidecar.read_sidecar(shots[7])["task"]["outputs"]
    assert 0 == cli.run("scan").returncode  # again: nothing new to do
    assert 100 == emulator.stats()["tasks_created"]


def test_a_failing_prompt_is_recorded_and_never_resubmitted(
        tmp_path: Path, emulator: Emulator) -> None:
    """The emulator fails the task: FAILED with its code in the sidecar; later scans send none."""
    cli = Cli(tmp_path, emulator, prompt="FAIL:SAFETY.INPUT.TEXT {stem}")
    shots = cli.stills(3)
    first = cli.run("scan")
    assert 1 == first.returncode
    for shot in shots:
        task = sidecar.read_sidecar(shot)["task"]
        assert ("FAILED", "SAFETY.INPUT.TEXT") == (task["status"], task["failure_code"])
        assert task["failure"]
    assert 1 == cli.run("scan").returncode
    assert 3 == emulator.stats()["tasks_created"]


def test_sigkill_mid_run_and_a_restart_submit_no_file_twice(
        tmp_path: Path, emulator: Emulator) -> None:
    """kill -9 during 100 files, restart: every file ends, none was submitted twice."""
    cli = Cli(tmp_path, emulator)
    shots = cli.stills(100)
    child = subprocess.Popen([sys.executable, "-m", "runwatchd", "run", "-c", str(cli.config)],
                             env=cli.env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: emulator.stats()["tasks_created"] >= 30, timeout=60)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _, err = child.communicate(timeout=30)
    killed_at = emulator.stats()["tasks_created"]
    assert killed_at < 100, "the run finished before the kill; the test proves nothing"
    result = cli.run("scan")
    per_file = cli.tasks_per_file()
    assert [] == [name for name, n in per_file.items() if n > 1]
    statuses = Counter(status_of(s) for s in shots)
    assert {"SUCCEEDED", "NEEDS_ATTENTION"} >= set(statuses), statuses
    assert all(per_file[s.name] == 1 for s in shots if status_of(s) == "SUCCEEDED")
    expected_code = 0 if statuses["NEEDS_ATTENTION"] == 0 else 1
    assert expected_code == result.returncode, result.stderr[-3000:]
    assert 100 == len(list(cli.hot.glob("*.runway.json")))
    assert statuses["SUCCEEDED"] == len(list((cli.hot / "renders").iterdir()))
    assert [] == temps(tmp_path / "hot")
    attention = [s for s in shots if status_of(s) == "NEEDS_ATTENTION"]
    if attention:  # killed between the POST and the id: only a retry, on purpose, sends again
        assert 0 == cli.run("retry", *map(str, attention)).returncode
        assert ["SUCCEEDED"] * len(attention) == [status_of(s) for s in attention]


def test_editing_the_rules_file_changes_the_next_file(tmp_path: Path, emulator: Emulator) -> None:
    """The daemon runs; a rules file edit between two drops gives the second file the new rule."""
    cli = Cli(tmp_path, emulator, prompt=None)
    rules_file = cli.hot / RULES_FILENAME
    rules_file.write_text('endpoint = "image_to_video"\noutput_dir = "v1"\n[request]\n'
                          'model = "gen4.5"\npromptText = "{stem}"\nratio = "1280:720"\n'
                          'duration = 5\n', encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", "runwatchd", "run", "-c", str(cli.config)],
                             env=cli.env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        a = cli.hot / "a.png"
        make_png(a, seed=1)
        assert wait_for(lambda: status_of(a) == "SUCCEEDED", timeout=30)
        rules_file.write_text('endpoint = "image_upscale"\noutput_dir = "v2"\n[request]\n'
                              'model = "magnific_precision_upscaler_v2"\n', encoding="utf-8")
        b = cli.hot / "b.png"
        make_png(b, seed=2)
        assert wait_for(lambda: status_of(b) == "SUCCEEDED", timeout=30)
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    assert 0 == child.returncode, err[-3000:]
    assert ("image_to_video", ["v1/a.png.mp4"]) == (
        sidecar.read_sidecar(a)["task"]["endpoint"], sidecar.read_sidecar(a)["task"]["outputs"])
    assert ("image_upscale", ["v2/b.png.png"]) == (
        sidecar.read_sidecar(b)["task"]["endpoint"], sidecar.read_sidecar(b)["task"]["outputs"])
    assert 2 == emulator.stats()["tasks_created"]


def test_config_rule_missing_a_field_is_rejected_at_load(
        tmp_path: Path, emulator: Emulator) -> None:
    """[folder.rule] without request.model: check-config and run exit 78 naming file and key."""
    cli = Cli(tmp_path, emulator)
    cli.config.write_text(cli.config.read_text().replace('model = "gen4.5"\n', ""))
    for command in ("check-config", "run"):
        result = cli.run(command)
        assert 78 == result.returncode
        assert f"{cli.config}: folder[0].rule.request.model: required (current models: gen4.5" in (
            result.stderr), result.stderr
    assert 0 == emulator.stats()["uploads_created"]


def test_rules_file_missing_a_field_is_rejected_with_path_and_key(
        tmp_path: Path, emulator: Emulator) -> None:
    """A bad runwatchd.rules.toml is named with its path and key; other folders go on."""
    other = f'[[folder]]\npath = "{tmp_path / "other"}"\n{RULE}'.replace("{prompt}", "{stem}")
    cli = Cli(tmp_path, emulator, prompt=None, extra=other)
    bad_rules = cli.hot / RULES_FILENAME
    bad_rules.write_text('endpoint = "image_to_video"\n[request]\npromptText = "x"\n',
                         encoding="utf-8")
    cli.stills(1)
    (good,) = cli.stills(1, tmp_path / "other")
    result = cli.run("scan")
    assert f"{bad_rules}: request.model: required (current models: gen4.5" in result.stderr
    assert "SUCCEEDED" == status_of(good)
    assert 1 == emulator.stats()["tasks_created"]


def test_retry_resubmits_on_purpose_and_status_shows_attention(
        tmp_path: Path, emulator: Emulator) -> None:
    """A dropped POST leaves 'needs attention' (status lists it); `retry FILE` submits once more."""
    cli = Cli(tmp_path, emulator)
    (shot,) = cli.stills(1)
    emulator.set_faults(drop_after_rate=1.0, scope=["tasks"])
    assert 1 == cli.run("scan").returncode
    emulator.set_faults(drop_after_rate=0.0)
    assert "NEEDS_ATTENTION" == status_of(shot)
    status = cli.run("status", "--json")
    doc = json.loads(status.stdout)
    assert 1 == doc["files"].get("attention")
    assert any(f["path"] == str(shot) and "needs attention" in f["error"]
               for f in doc["recent_failures"])
    text = cli.run("status").stdout
    assert f"{shot}: attention: needs attention" in text
    assert 1 == cli.run("scan").returncode  # a scan alone never resubmits
    assert 1 == emulator.stats()["tasks_created"]
    retried = cli.run("retry", str(shot))
    assert 0 == retried.returncode, retried.stderr[-3000:]
    assert "SUCCEEDED" == status_of(shot)
    assert 2 == emulator.stats()["tasks_created"]
    again = cli.run("retry", str(tmp_path / "hot" / "nope.png"))
    assert 1 == again.returncode
    assert "nothing to retry" in again.stderr


def test_retry_after_a_crash_without_a_restart(tmp_path: Path, emulator: Emulator) -> None:
    """A row left "submitting" by a crash, no daemon running: `retry` takes it, submits once."""
    from runwatchd.store import open_store

    cli = Cli(tmp_path, emulator)
    (shot,) = cli.stills(1)
    assert 0 == cli.run("scan").returncode
    journal = open_store(tmp_path / "state")
    try:  # the way a crash gets there: retried on purpose, claimed, killed before the POST
        journal.update(shot, state="retry", task_id=None)
        journal.update(shot, state="submitting")
    finally:
        journal.close()
    result = cli.run("retry", str(shot))
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "SUCCEEDED" == status_of(shot)
    assert 2 == emulator.stats()["tasks_created"]


def test_poll_knob_is_documented_where_it_is_read() -> None:
    """The hidden RUNWATCHD_TASK_POLL_SECONDS knob is explained in tasks.py's docstring."""
    from runwatchd.generation import follower as tasks

    assert "RUNWATCHD_TASK_POLL_SECONDS" in (tasks.__doc__ or "")
    assert "loopback" in (tasks.__doc__ or "")


@pytest.mark.parametrize("output_dir", ["..", "../../hot"])
def test_rules_file_writing_outputs_among_sources_holds_its_files(
        tmp_path: Path, emulator: Emulator, output_dir: str) -> None:
    """output_dir = ".." in hot/sub/runwatchd.rules.toml (issue 13: a paid loop): refused with
    path and key, the files wait with the reason, and no scan uploads or submits them twice."""
    cli = Cli(tmp_path, emulator)
    rules = cli.hot / "sub" / RULES_FILENAME
    rules.parent.mkdir()
    rules.write_text(f'endpoint = "image_to_video"\noutput_dir = "{output_dir}"\n[request]\n'
                     'model = "gen4.5"\npromptText = "x"\nratio = "1280:720"\nduration = 5\n',
                     encoding="utf-8")
    cli.stills(2, cli.hot / "sub")
    first = cli.run("scan")
    second = cli.run("scan")
    assert f"invalid rules file {rules}: output_dir: " in first.stderr + first.stdout, first.stderr
    assert (0, 0) == (emulator.stats()["tasks_created"], emulator.stats()["uploads_created"])
    assert second.returncode == first.returncode
    assert [] == list(cli.hot.rglob("*.mp4"))


def test_a_failure_echoing_the_secret_is_never_stored_or_shown(
        tmp_path: Path, emulator: Emulator) -> None:
    """A task's failure text carrying the API key: the sidecar, the journal, `scan` and `status`
    show it without the key."""
    emulator.tasks.failure_text = f"rejected: Authorization: Bearer {SECRET} is not allowed"
    cli = Cli(tmp_path, emulator, prompt="FAIL:SAFETY.INPUT.TEXT {stem}")
    (shot,) = cli.stills(1)
    scan = cli.run("scan")
    status = cli.run("status")
    task = sidecar.read_sidecar(shot)["task"]
    assert ("FAILED", "rejected: Authorization: Bearer *** is not allowed") == (
        task["status"], task["failure"])
    assert "Bearer ***" in scan.stdout + scan.stderr
    for text in (scan.stdout, scan.stderr, status.stdout, status.stderr):
        assert SECRET not in text
    for stored in (tmp_path / "state").rglob("*"):
        if stored.is_file():
            assert SECRET.encode() not in stored.read_bytes(), stored


def test_succeeded_sidecar_records_the_credits(tmp_path: Path, emulator: Emulator) -> None:
    """The emulator's estimatedCost and cost (5 credits a second, 5 s) land in the sidecar."""
    cli = Cli(tmp_path, emulator)
    (shot,) = cli.stills(1)
    assert 0 == cli.run("scan").returncode
    task = sidecar.read_sidecar(shot)["task"]
    assert (25, 25) == (task["credits_estimated"], task["credits"])


def test_a_rules_file_placing_the_file_with_uri_generates(tmp_path: Path,
                                                          emulator: Emulator) -> None:
    """referenceImages = [{uri = "{uri}", tag = "ref"}]: the emulator (validating with the SDK's
    schemas) accepts the body and the output comes home as shot000.png.png."""
    cli = Cli(tmp_path, emulator, prompt=None)
    (cli.hot / RULES_FILENAME).write_text(
        'endpoint = "text_to_image"\noutput_dir = "renders"\n[request]\nmodel = "gen4_image"\n'
        'promptText = "@ref in the rain"\nratio = "1920:1080"\n'
        'referenceImages = [{uri = "{uri}", tag = "ref"}]\n', encoding="utf-8")
    (shot,) = cli.stills(1)
    result = cli.run("scan")
    assert 0 == result.returncode, result.stderr[-3000:]
    assert ("SUCCEEDED", ["renders/shot000.png.png"]) == (
        status_of(shot), sidecar.read_sidecar(shot)["task"]["outputs"])
