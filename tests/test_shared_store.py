"""Two daemons on one store and one folder (in-process, SQLite): the leases make them one.

The PostgreSQL cluster with processes and SIGKILL is tests/cluster/; these prove the daemon's
side of the claims quickly: one upload and one task per file with two daemons working at once,
and a dead holder's rows in progress taken over by the survivor.
"""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from daemon_helpers import Runner, uploads
from helpers import drop, wait_for
from helpers import has_sidecar as done

from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.states import FileState
from runwatchd.store import open_store
from runwatchd.store.record import FileRecord


def rule() -> dict[str, Any]:
    return {"endpoint": "image_to_video", "output_dir": "renders",
            "request": {"model": "gen4.5", "promptText": "{stem} moves", "ratio": "1280:720",
                        "duration": 5}}


def task_status(path: Path) -> str | None:
    data = sidecar.read_sidecar(path)
    return data["task"].get("status") if data and "task" in data else None


def test_two_daemons_on_one_store_upload_and_submit_each_file_once(
        runner: Runner, tmp_path: Path) -> None:
    """Two daemons watching one folder through one store: each file once, each task once."""
    hot = tmp_path / "hot"
    hot.mkdir()
    cfg = runner.config([{"path": str(hot), "rule": rule()}], concurrency=2, rescan_interval=0,
                        settle_seconds=0.05)
    runner.start(cfg, poll_interval=0.05)
    runner.start(cfg, poll_interval=0.05)
    files = [drop(hot / f"shot{n:02}.jpg") for n in range(24)]
    assert wait_for(lambda: all(task_status(f) == "SUCCEEDED" for f in files), 60)
    stats = runner.emu.stats()
    assert (24, 24) == (uploads(runner.emu), stats["tasks_created"])


def _dead_holder() -> str:
    """A holder id of a process of this host that has ended (its pid is gone)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return f"{socket.gethostname()}:{int(proc.stdout)}:dead00"


def test_a_dead_holders_work_in_progress_is_taken_over_while_running(
        runner: Runner, tmp_path: Path) -> None:
    """Rows a dead process left leased (uploading, submitting) are repaired by a running daemon
    at its next beat: the upload done again, the intent marked "needs attention" and never
    submitted again."""
    hot = tmp_path / "hot"
    hot.mkdir()
    cfg = runner.config([{"path": str(hot), "rule": rule()}], rescan_interval=0)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, lease_seconds=1.5))
    runner.start(cfg, poll_interval=0.05)
    half, sent = drop(hot / "half.jpg"), drop(hot / "sent.jpg")
    assert wait_for(lambda: task_status(half) == task_status(sent) == "SUCCEEDED", 30)
    before = runner.emu.stats()["tasks_created"]
    # Make both look like a dead process's work in progress, leased to it.
    sidecar.sidecar_path(half).unlink()
    store = open_store(runner.state)
    try:
        store.update(half, state=FileState.FAILED)
        store.update(half, state=FileState.UPLOADING, task_id=None, runway_uri=None)
        store.update(sent, state=FileState.RETRY)
        store.update(sent, state=FileState.SUBMITTING, task_id=None,
                     error="the POST sent at 12:00:00")
    finally:
        store.close()
    db = sqlite3.connect(str(runner.state / "journal.sqlite3"))
    with db:
        db.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                       [(str(p), _dead_holder(), 9e12) for p in (half, sent)])
    db.close()
    assert wait_for(lambda: task_status(sent) == "NEEDS_ATTENTION", 30)
    assert wait_for(lambda: task_status(half) == "SUCCEEDED", 30)
    assert before + 1 == runner.emu.stats()["tasks_created"]  # half's again, sent's never


def test_a_dead_holders_row_in_a_folder_not_watched_here_is_left_alone(
        runner: Runner, tmp_path: Path) -> None:
    """Another node's orphan in a folder this node does not watch is not repaired here while it
    runs (this node may not mount it): its row stays as it was, for a node that watches it."""
    hot, elsewhere = tmp_path / "hot", tmp_path / "elsewhere"
    hot.mkdir()
    elsewhere.mkdir()
    cfg = runner.config([hot], rescan_interval=0)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, lease_seconds=1.5))
    runner.start(cfg)
    theirs = drop(elsewhere / "theirs.jpg")
    store = open_store(runner.state)
    try:
        store.put(FileRecord(path=str(theirs), state=FileState.SUBMITTING,
                             error="the POST sent at 12:00:00"))
        db = sqlite3.connect(str(runner.state / "journal.sqlite3"))
        with db:
            db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                       (str(theirs), _dead_holder(), 9e12))
        db.close()
        mine = drop(hot / "mine.jpg")
        assert wait_for(lambda: done(mine), 10)
        time.sleep(1.2)  # two beats of a 1.5 s lease
        assert FileState.SUBMITTING == store.get(theirs).state  # type: ignore[union-attr]
    finally:
        store.close()
