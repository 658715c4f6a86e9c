"""Tests for runwatchd.service.health: health verdicts and status reports from a Snapshot."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from runwatchd.service.health import STALLED_AFTER, FolderView, Health, Snapshot
from runwatchd.service.status import STATUS_FILE

HOT = Path("/hot")
CALM = Snapshot(folders=(FolderView(HOT, "inotify", "watching", True),), in_flight=frozenset(),
                waiting=2, tasks=1, outcomes={"uploaded": 3, "failed": 1}, paused=None,
                follower_alive=True, last_progress=0.0)


def health(snapshot: Snapshot, tmp_path: Path, *, watching: bool = True,
           now: float = 0.0) -> Health:
    return Health(lambda: snapshot, state_dir=tmp_path, watching=watching, clock=lambda: now)


def test_status_line_says_what_is_going_on(tmp_path: Path) -> None:
    """Counts in one line; a rejected key takes the whole line."""
    assert "0 uploading, 2 waiting, 1 tasks; 3 uploaded, 1 failed" == health(
        CALM, tmp_path).status_line()
    paused = dataclasses.replace(CALM, paused="your API key was rejected")
    assert "PAUSED: your API key was rejected" == health(paused, tmp_path).status_line()


def test_status_line_names_unavailable_folders(tmp_path: Path) -> None:
    """A folder whose mount is gone is named in the status line."""
    away = dataclasses.replace(CALM, folders=(FolderView(HOT, "polling", "unavailable", True),))
    assert health(away, tmp_path).status_line().endswith("; 1 folder(s) unavailable: /hot")


def test_a_dead_observer_is_unhealthy_only_when_watching(tmp_path: Path) -> None:
    """A dead observer fails a run's health; a scan watches nothing, so it does not care."""
    dead = dataclasses.replace(CALM, folders=(FolderView(HOT, "inotify", "watching", False),))
    assert (False, True) == (health(dead, tmp_path).healthy(),
                             health(dead, tmp_path, watching=False).healthy())


def test_workers_busy_without_progress_are_stalled(tmp_path: Path) -> None:
    """Files in flight and no progress for STALLED_AFTER seconds: unhealthy."""
    busy = dataclasses.replace(CALM, in_flight=frozenset({HOT / "a.jpg"}))
    assert True is health(busy, tmp_path, now=STALLED_AFTER).healthy()
    assert False is health(busy, tmp_path, now=STALLED_AFTER + 1).healthy()
    assert True is health(CALM, tmp_path, now=STALLED_AFTER + 1).healthy()  # idle is fine


def test_a_dead_task_follower_is_unhealthy(tmp_path: Path) -> None:
    """The follower's threads died: unhealthy."""
    assert False is health(dataclasses.replace(CALM, follower_alive=False), tmp_path).healthy()


def test_status_file_is_written_only_by_its_owner(tmp_path: Path) -> None:
    """status.json belongs to the process that owns the state directory."""
    h = health(CALM, tmp_path)
    h.write_final_status()
    assert not (tmp_path / STATUS_FILE).exists()
    h.own_status_file()
    h.write_final_status()
    status = json.loads((tmp_path / STATUS_FILE).read_text())
    assert (False, 2, {"uploaded": 3, "failed": 1}) == (
        status["running"], status["waiting"], status["outcomes"])


def test_the_heartbeat_sets_the_holders_gauge(tmp_path: Path) -> None:
    """Every status beat counts the store's processes alive and dead into runwatchd_holders."""
    from runwatchd.service.metrics import Metrics
    from runwatchd.store.base import HolderInfo

    def holder(name: str, alive: bool) -> HolderInfo:
        return HolderInfo(holder=f"{name}:1:t", node=name, pid=1, version=None, started_at=0.0,
                          heartbeat_at=0.0, in_flight=0, alive=alive)

    metrics = Metrics(process_metrics=False)
    h = Health(lambda: CALM, state_dir=tmp_path, watching=True, metrics=metrics,
               holders=lambda: [holder("a", True), holder("b", True), holder("c", False)])
    h.heartbeat()
    assert [2.0, 1.0] == [metrics.registry.get_sample_value("runwatchd_holders", {"alive": a})
                          for a in ("true", "false")]
