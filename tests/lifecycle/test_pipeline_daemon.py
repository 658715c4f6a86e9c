"""Tests for a file's lifecycle inside a running Daemon on the emulator: rules files that change or
break, and generation waiting for credits while uploads go on."""

from __future__ import annotations

import logging

import pytest
from daemon_helpers import harness
from helpers import wait_for
from pipeline_helpers import RULE, Rig, task_part

from runwatchd.config.load import parse_config
from runwatchd.generation.rules import RULES_FILENAME
from runwatchd.lifecycle import sidecar


def test_editing_a_rules_file_changes_what_the_next_file_gets(rig: Rig) -> None:
    """Rules file v1 -> a.png rendered to v1/; edited to v2 -> b.png to v2/; a is not redone."""
    rules_file = rig.root / RULES_FILENAME
    rules_file.write_text('endpoint = "image_to_video"\noutput_dir = "v1"\n[request]\n'
                          'model = "gen4.5"\npromptText = "one"\nratio = "1280:720"\n'
                          'duration = 5\n', encoding="utf-8")
    a = rig.still("a.png", 1)
    assert 0 == rig.scan(cfg=rig.config(rule=None))[0]
    rules_file.write_text('endpoint = "image_upscale"\noutput_dir = "v2"\n[request]\n'
                          'model = "magnific_precision_upscaler_v2"\n', encoding="utf-8")
    b = rig.still("b.png", 2)
    assert 0 == rig.scan(cfg=rig.config(rule=None))[0]
    assert (["v1/a.png.mp4"], "image_to_video") == (task_part(a)["outputs"], task_part(a)["endpoint"])
    assert (["v2/b.png.png"], "image_upscale") == (task_part(b)["outputs"], task_part(b)["endpoint"])
    assert 2 == rig.stats()["tasks_created"]


def test_invalid_rules_file_is_reported_and_other_folders_go_on(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A rules file missing request.model is named with its path and key; the rest goes on."""
    bad = rig.root / "bad"
    bad.mkdir()
    (bad / RULES_FILENAME).write_text('endpoint = "image_to_video"\n[request]\n'
                                      'promptText = "x"\n', encoding="utf-8")
    rig.still("bad/x.png", 1)
    good = rig.still("good.png", 2)
    caplog.set_level(logging.WARNING)
    assert 1 == rig.scan()[0]  # bad/x.png waits for its rules file: no success
    warnings = [r.getMessage() for r in caplog.records if RULES_FILENAME in r.getMessage()]
    assert any(str(bad / RULES_FILENAME) in m and "request.model" in m for m in warnings)
    assert "SUCCEEDED" == task_part(good)["status"]


def test_no_credits_pauses_generation_uploads_go_on_and_reload_resumes(rig: Rig) -> None:
    """No credits: files are uploaded and wait; after a reload every one is generated once."""
    rig.emu.set_faults(no_credits=True)
    shots = [rig.still(f"s{n}.png", n) for n in range(3)]
    cfg = parse_config({"runway": {"state_dir": str(rig.state)},
                        "defaults": {"settle_seconds": 0.1, "rescan_interval": 0},
                        "folder": [{"path": str(rig.root), "rule": RULE}]}, "test")
    rig.journal.close()
    with harness(rig.state) as h:
        daemon = h.daemon(cfg, client=rig.client, poll_interval=0.02)
        journal = daemon.journal
        h.launch(daemon)
        assert wait_for(lambda: all((r := journal.get(s)) is not None
                                    and r.state == "awaiting_credits" for s in shots), 15)
        assert 3 == rig.stats()["uploads_completed"]
        assert all(sidecar.read_sidecar(s) is not None for s in shots)
        assert 0 == rig.stats()["tasks_created"]
        rig.emu.set_faults(no_credits=False)
        daemon.request_reload()
        assert wait_for(lambda: all((t := (sidecar.read_sidecar(s) or {}).get("task"))
                                    and t["status"] == "SUCCEEDED" for s in shots), 15)
    assert 3 == rig.stats()["tasks_created"]
