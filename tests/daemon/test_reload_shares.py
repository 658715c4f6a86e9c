"""A reload never changes a folder's share (the store's keys): it is refused in one log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import Runner, running

from runwatchd.config.load import parse_config
from runwatchd.daemon.reload import share_changes


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    with running(tmp_path) as r:
        yield r


def test_share_changes_lists_what_a_restart_must_apply(tmp_path: Path) -> None:
    """A share added, changed or dropped on a folder, or a new folder with one, counts."""
    a, b, c = (str(tmp_path / n) for n in "abc")
    old = parse_config({"folder": [{"path": a, "share": "hot"}, {"path": b}]}, "old")
    same = parse_config({"folder": [{"path": a, "share": "hot"}, {"path": b},
                                    {"path": c}]}, "same")
    assert [] == share_changes(old, same)
    assert [] == share_changes(old, parse_config({"folder": [{"path": b}]}, "dropped folder"))
    changed = parse_config({"folder": [{"path": a, "share": "cold"}, {"path": b, "share": "b"},
                                       {"path": c, "share": "c"}]}, "changed")
    assert [f"{a}: share 'hot' -> 'cold'", f"{b}: share None -> 'b'",
            f"{c}: share None -> 'c'"] == share_changes(old, changed)


def test_a_reload_that_changes_a_share_keeps_the_running_config(
        runner: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGHUP with a new share: one error line, the running configuration stays."""
    hot = tmp_path / "hot"
    hot.mkdir()
    cfg = runner.config([{"path": str(hot), "share": "hot"}])
    moved = runner.config([{"path": str(hot), "share": "cold"}])
    daemon = runner.daemon(cfg, config_loader=lambda: moved)
    try:
        with caplog.at_level(logging.ERROR, logger="runwatchd.daemon.reload"):
            daemon.reloader.reload()
        assert cfg is daemon.reloader.config
        expected = (f"reload failed, keeping the running configuration: {hot}: share 'hot' -> "
                    "'cold': a share names the folder's files in the store; restart runwatchd "
                    "to change it")
        assert [expected] == [r.getMessage() for r in caplog.records]
    finally:
        daemon.folders.stop_watching()
