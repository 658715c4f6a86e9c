"""Every generation endpoint of the shipped schemas, end to end: `runwatchd check-config` accepts
a rule with a current model for it, and a file dropped under that rule goes through the daemon
(upload, POST, follow, download) to SUCCEEDED on the emulator, with a body Runway's schemas
accept carrying the file's runway:// URI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from endpoint_rules import EXAMPLES, NO_MEDIA, config_text, example_rule
from daemon_helpers import harness
from helpers import drop
from pipeline_helpers import SECRET, Rig, task_part

from runwatchd.cli import main as cli
from runwatchd.cli.demo import make_png
from runwatchd.config.load import load_config
from runwatchd.daemon.policy import SCAN
from runwatchd.emulator import Emulator
from runwatchd.generation.prompts import get_at
from runwatchd.generation.rule_schema import takes_prompt
from runwatchd.runway import schemas
from runwatchd.runway.endpoints import ENDPOINTS as ENDPOINT_SPECS

ENDPOINTS = schemas.default().endpoints()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An emulator whose tasks finish in a fraction of a second."""
    with Emulator(api_secret=SECRET, task_seconds=0.05, pending_seconds=0.02) as emu:
        yield emu


@pytest.fixture
def rig(tmp_path: Path, emulator: Emulator) -> Iterator[Rig]:
    """A Rig (hot folder, journal, scan-mode daemons) on the emulator."""
    r = Rig(tmp_path, emulator)
    yield r
    r.close()


def _check_config(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`runwatchd check-config -c path` in this process: (exit code, stderr, stdout)."""
    secret = tmp_path / "runway_api_secret"
    secret.write_text("key-for-check-config-0123\n")
    secret.chmod(0o600)
    for name in ("RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    # cli.main configures the process's logging; other tests' loggers must stay untouched.
    monkeypatch.setattr("runwatchd.service.logs.setup_logging", lambda *args, **kwargs: None)
    code = cli.main(["check-config", "-c", str(path)])
    out, err = capsys.readouterr()
    return code, err, out


def _media(path: Path) -> Path:
    if path.suffix == ".png":
        make_png(path)
        return path
    return drop(path, 2048)


def test_every_endpoint_has_an_example() -> None:
    """The examples below cover the schemas' index, so a new endpoint cannot skip this test."""
    assert set(ENDPOINTS) - NO_MEDIA == set(EXAMPLES)


@pytest.mark.parametrize("endpoint", sorted(set(ENDPOINTS) - NO_MEDIA))
def test_a_rule_for_each_endpoint_passes_check_config_and_succeeds(
        endpoint: str, rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """check-config exits 0 on the endpoint's rule; a file under it is uploaded, its body
    (valid under the schemas, the file's URI in it, its prompt file's text where the endpoint
    takes a prompt) POSTed to /v1/<endpoint>, and the task followed to SUCCEEDED with its
    outputs brought home."""
    name, rule = example_rule(endpoint)
    config = tmp_path / "runwatchd.toml"
    config.write_text(config_text(rig.root, rig.state, rule), encoding="utf-8")
    assert (0, "") == _check_config(config, tmp_path, monkeypatch, capsys)[:2]
    path = _media(rig.root / name)
    (rig.root / f"{name}.prompt.txt").write_text("told by the prompt file\n", encoding="utf-8")
    with harness(rig.state, rig.emu.url, SECRET) as h:  # on rig.client, which keeps the bodies
        code = h.run(h.daemon(load_config(config), client=rig.client, policy=SCAN,
                              poll_interval=0.02))
    task = task_part(path) or {}
    assert (0, "SUCCEEDED", endpoint) == (code, task.get("status"), task.get("endpoint"))
    assert task["outputs"] and all((rig.root / out).is_file() for out in task["outputs"])
    (body,) = rig.bodies
    assert [] == schemas.default().validate(endpoint, body)
    uploaded = json.loads((path.parent / f"{path.name}.runway.json").read_text())["runway_uri"]
    assert uploaded in json.dumps(body)
    where = ENDPOINT_SPECS[endpoint].prompt
    takes = takes_prompt(endpoint, rule["request"].get("model"), where)
    assert (takes, takes) == (get_at(body, where) == "told by the prompt file",
                              "told by the prompt file" in json.dumps(body))
    assert {f"POST /v1/{endpoint}": {"200": 1}} == {
        k: v for k, v in rig.stats()["requests"].items() if k.startswith("POST /v1/")
        and k != "POST /v1/uploads"}


@pytest.mark.parametrize(("endpoint", "credits"), [
    ("generate/video", 25), ("generate/image", 2), ("generate/audio", 1), ("image_to_video", 25),
])
def test_the_estimate_of_the_create_reply_reaches_the_sidecar(
        endpoint: str, credits: int, tmp_path: Path) -> None:
    """The create reply's estimate lands in the sidecar's task block, for the model routers
    from `routing.estimatedCost`: tasks that end before the first poll carry no estimate in
    any task reply, so only the create reply can give it."""
    name, rule = example_rule(endpoint)
    with Emulator(api_secret=SECRET, task_seconds=0, pending_seconds=0) as emu:
        rig = Rig(tmp_path, emu)
        try:
            path = _media(rig.root / name)
            code, _ = rig.scan(cfg=rig.config(rule))
        finally:
            rig.close()
    task = task_part(path) or {}
    assert (0, "SUCCEEDED", credits, credits) == (
        code, task.get("status"), task.get("credits_estimated"), task.get("credits"))


def test_a_rule_for_an_endpoint_without_media_is_refused(
        rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """sound_effect makes sound from a prompt alone: no file can go there, and check-config
    says so instead of sending files nowhere."""
    rule = {"endpoint": "sound_effect", "output_dir": "renders",
            "request": {"model": "eleven_text_to_sound_v2", "promptText": "rain"}}
    config = tmp_path / "runwatchd.toml"
    config.write_text(config_text(rig.root, rig.state, rule), encoding="utf-8")
    code, err, _ = _check_config(config, tmp_path, monkeypatch, capsys)
    assert (78, True) == (code, "sound_effect takes no media input" in err), err


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("generate/video", ": generate/video, config cfg-video, file URI in "
                       "input.referenceImages[0].uri\n"),
    ("recipes/product_ad", ": recipes/product_ad, no model, file URI in productImages\n"),
    ("video_to_hdr", ": video_to_hdr, model ruby, file URI in videoUri\n"),
])
def test_check_config_tells_what_runs_and_where_the_file_goes(
        endpoint: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """check-config's rule line names the model (a router's config; none for a recipe) and the
    field the file's URI goes to, "{uri}" places included."""
    _, rule = example_rule(endpoint)
    config = tmp_path / "runwatchd.toml"
    config.write_text(config_text(tmp_path / "hot", tmp_path / "state", rule), encoding="utf-8")
    code, _, out = _check_config(config, tmp_path, monkeypatch, capsys)
    assert (0, True) == (code, expected in out), out
