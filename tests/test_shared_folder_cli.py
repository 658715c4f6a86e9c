"""`[[folder]] share` through the real commands (subprocesses): scan, status and retry name the
file by its share key in the store and by its path on this host everywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli

from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.store import open_store

SECRET = "shared-folder-cli-key"
CONFIG = """[runway]
state_dir = "{state}"
[defaults]
settle_seconds = 0.2
rescan_interval = 0
[[folder]]
path = "{hot}"
share = "hot"
[folder.rule]
endpoint = "image_to_video"
output_dir = "renders"
[folder.rule.request]
model = "gen4.5"
promptText = "{{stem}} moves"
ratio = "1280:720"
duration = 5
"""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, task_seconds=0.2, pending_seconds=0.05) as emu:
        yield emu


def test_scan_status_and_retry_go_through_the_share_key(tmp_path: Path,
                                                        emulator: Emulator) -> None:
    """A dropped POST needs attention: status shows the share key, `retry PATH` finds the row
    by it and submits once more, and the store holds one row, keyed "hot/shot.png"."""
    hot = tmp_path / "hot"
    shot = hot / "shot.png"
    hot.mkdir()
    make_png(shot, width=32, height=32, seed=1)
    config = tmp_path / "runwatchd.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", hot=hot), encoding="utf-8")
    env = cli_env(tmp_path, emulator.url, SECRET, RUNWATCHD_TASK_POLL_SECONDS="0.1")

    def cli(*args: str) -> str:
        result = run_cli([*args, "-c", str(config)], env, tmp_path, timeout=90)
        # scan exits 1 with a file needing attention, status 3 with no daemon running
        expected = {"scan": 1, "status": 3}.get(args[0], 0)
        assert expected == result.returncode, result.stderr[-3000:]
        return result.stdout

    emulator.set_faults(drop_after_rate=1.0, scope=["tasks"])
    cli("scan")
    emulator.set_faults(drop_after_rate=0.0)
    assert "hot/shot.png: attention: needs attention" in cli("status")
    cli("retry", str(shot))
    data = sidecar.read_sidecar(shot) or {}
    assert "SUCCEEDED" == (data.get("task") or {}).get("status")
    assert 2 == emulator.stats()["tasks_created"]
    store = open_store(tmp_path / "state")
    try:
        assert [("hot/shot.png", "succeeded", "hot/renders")] == [
            (r.path, r.state, r.output_dir) for r in store]
    finally:
        store.close()
