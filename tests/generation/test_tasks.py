"""Tests for runwatchd.generation.follower: following generations on the emulator to their end,
and downloads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for

from runwatchd import fsutil
from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.generation.follower import MIN_POLL, POLL_ENV, TaskFollower, resolve_poll_interval
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.client_ref import ClientRef
from runwatchd.runway.retries import RetryPolicy
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore

SECRET = "tasks-test-key"
POLL = 0.05


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, task_seconds=0.1, pending_seconds=0.05) as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Iterator[RunwayClient]:
    with RunwayClient(SECRET, emulator.url,
                      retry=RetryPolicy(max_attempts=2, initial_delay=0.01)) as c:
        yield c


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteStore]:
    j = SqliteStore(tmp_path / "state" / "journal.sqlite3")
    yield j
    j.close()


def submitted(tmp_path: Path, client: RunwayClient, journal: SqliteStore, name: str = "shot.png",
              prompt: str = "a shot", seed: int = 0) -> FileRecord:
    """A file uploaded and submitted as the pipeline leaves it: journal "running", sidecar task."""
    path = tmp_path / "hot" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make_png(path, seed=seed)
    up = client.upload(path)
    answer = client.create_task("image_to_video", {"model": "gen4.5", "promptImage": up.runway_uri,
                                                   "promptText": prompt, "ratio": "1280:720",
                                                   "duration": 5})
    record = FileRecord(path=str(path), state="running", size=up.size, mtime_ns=up.mtime_ns,
                        inode=path.stat().st_ino, sha256=up.sha256, runway_uri=up.runway_uri,
                        uploaded_at=up.uploaded_at.timestamp(), endpoint="image_to_video",
                        task_id=answer["id"], task_status="PENDING", rule_name="hot",
                        output_dir=str(tmp_path / "hot" / "renders"))
    journal.put(record)
    return record


def follow_all(follower: TaskFollower, *records: FileRecord) -> None:
    for r in records:
        follower.follow(Path(r.path), r.task_id, Path(r.output_dir))


def task_of(record: FileRecord) -> dict:
    data = sidecar.read_sidecar(Path(record.path))
    assert data is not None
    return data["task"]


def ended(journal: SqliteStore, *records: FileRecord, state: str = "succeeded",
          timeout: float = 10) -> bool:
    """Every record reached `state` in the journal and its final status in the sidecar (the
    sidecar is written right after the journal)."""
    final = {"succeeded": ("SUCCEEDED",), "task_failed": ("FAILED", "CANCELLED")}[state]

    def done() -> bool:
        for r in records:
            data = sidecar.read_sidecar(Path(r.path)) if Path(r.path).exists() else None
            if journal.get(r.path).state != state or (
                    data is not None and data["task"]["status"] not in final):
                return False
        return True

    return bool(wait_for(done, timeout=timeout))


@pytest.fixture
def follower(client: RunwayClient, journal: SqliteStore) -> Iterator[TaskFollower]:
    f = TaskFollower(ClientRef(client), journal, Pauses(), poll_interval=POLL)
    f.start()
    yield f
    f.stop()


def test_poll_interval_defaults_to_runways_minimum() -> None:
    """Without a knob the follower polls every 5 s."""
    assert MIN_POLL == resolve_poll_interval(None, "https://api.dev.runwayml.com", {})


def test_poll_knob_is_clamped_against_runway() -> None:
    """RUNWATCHD_TASK_POLL_SECONDS below 5 s is raised to 5 s for a non-loopback API."""
    env = {POLL_ENV: "0.2"}
    assert MIN_POLL == resolve_poll_interval(None, "https://api.dev.runwayml.com", env)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:9"])
def test_poll_knob_is_honoured_for_a_local_emulator(url: str) -> None:
    """Against a loopback base URL (the emulator) the knob goes below 5 s."""
    assert 0.2 == resolve_poll_interval(None, url, {POLL_ENV: "0.2"})


@pytest.mark.parametrize("raw", ["fast", "nan", "-1"])
def test_bad_poll_knob_falls_back_to_the_minimum(raw: str) -> None:
    """A value that is no non-negative number is ignored."""
    assert MIN_POLL == resolve_poll_interval(None, "http://127.0.0.1:1", {POLL_ENV: raw})


def test_explicit_interval_wins() -> None:
    """poll_interval= in code (tests, the demo) is used as given."""
    assert 0.01 == resolve_poll_interval(0.01, "https://api.dev.runwayml.com", {POLL_ENV: "9"})


def test_succeeded_task_downloads_its_output_and_records_it(
        tmp_path: Path, client: RunwayClient, journal: SqliteStore, follower: TaskFollower) -> None:
    """SUCCEEDED: the output lands in output_dir as <stem>.mp4; journal and sidecar say so."""
    record = submitted(tmp_path, client, journal)
    follow_all(follower, record)
    assert ended(journal, record, state="succeeded")
    task = task_of(record)
    assert ("SUCCEEDED", ["renders/shot.png.mp4"], record.task_id, "hot") == (
        task["status"], task["outputs"], task["id"], task["rule"])
    assert (tmp_path / "hot" / "renders" / "shot.png.mp4").stat().st_size > 0
    assert 0 == follower.pending()


def test_several_outputs_are_named_after_the_source(tmp_path: Path, journal: SqliteStore) -> None:
    """outputs_per_task=3: shot.png.mp4, shot.png_2.mp4, shot.png_3.mp4, each downloaded."""
    with Emulator(api_secret=SECRET, task_seconds=0.05, outputs_per_task=3) as emu, \
            RunwayClient(SECRET, emu.url) as client:
        record = submitted(tmp_path, client, journal)
        follower = TaskFollower(ClientRef(client), journal, Pauses(), poll_interval=POLL)
        follower.start()
        try:
            follow_all(follower, record)
            assert ended(journal, record, state="succeeded")
        finally:
            follower.stop()
        assert 3 == emu.stats()["outputs_served"]
    assert ["renders/shot.png.mp4", "renders/shot.png_2.mp4", "renders/shot.png_3.mp4"] == task_of(
        record)["outputs"]
    assert {"shot.png.mp4", "shot.png_2.mp4", "shot.png_3.mp4"} == {
        p.name for p in (tmp_path / "hot" / "renders").iterdir()}


def test_failed_task_keeps_failure_and_code(
        tmp_path: Path, client: RunwayClient, journal: SqliteStore, follower: TaskFollower) -> None:
    """FAILED: failure text and failureCode go to journal and sidecar; state task_failed."""
    record = submitted(tmp_path, client, journal, prompt="FAIL:INTERNAL.BAD_OUTPUT.CODE01")
    follow_all(follower, record)
    assert ended(journal, record, state="task_failed")
    task = task_of(record)
    assert ("FAILED", "INTERNAL.BAD_OUTPUT.CODE01", []) == (
        task["status"], task["failure_code"], task["outputs"])
    assert task["failure"]
    assert "INTERNAL.BAD_OUTPUT.CODE01" == journal.get(record.path).failure_code


def test_cancelled_task_is_recorded(tmp_path: Path, client: RunwayClient,
                                    journal: SqliteStore) -> None:
    """A task cancelled elsewhere ends CANCELLED in the sidecar (and is not resubmitted)."""
    with Emulator(api_secret=SECRET, task_seconds=30) as emu, RunwayClient(SECRET, emu.url) as c:
        record = submitted(tmp_path, c, journal)
        follower = TaskFollower(ClientRef(c), journal, Pauses(), poll_interval=POLL)
        follower.start()
        try:
            follow_all(follower, record)
            c.cancel_task(record.task_id)
            assert ended(journal, record, state="task_failed")
        finally:
            follower.stop()
        assert 1 == emu.stats()["tasks_created"]
    assert "CANCELLED" == task_of(record)["status"]


def test_waiting_states_are_not_errors_and_polls_keep_their_distance(
        tmp_path: Path, journal: SqliteStore) -> None:
    """PENDING/THROTTLED/RUNNING are waited through; each task's polls are >= the interval apart."""
    polls: dict[str, list[float]] = {}
    statuses: list[str] = []
    with Emulator(api_secret=SECRET, task_seconds=0.3, pending_seconds=0.1,
                  max_concurrent_tasks=1) as emu, RunwayClient(SECRET, emu.url) as client:
        records = [submitted(tmp_path, client, journal, f"s{n}.png", seed=n) for n in range(3)]
        real_get, real_put = client.get_task, journal.put

        def get_task(task_id: str) -> dict:
            polls.setdefault(task_id, []).append(time.monotonic())
            return real_get(task_id)

        def put(record: FileRecord) -> None:
            statuses.append(record.task_status or "")
            real_put(record)

        client.get_task, journal.put = get_task, put  # type: ignore[method-assign]
        follower = TaskFollower(ClientRef(client), journal, Pauses(), poll_interval=0.1)
        follower.start()
        try:
            follow_all(follower, *records)
            assert ended(journal, *records, timeout=15)
        finally:
            follower.stop()
    assert {"THROTTLED", "RUNNING", "SUCCEEDED"} <= set(statuses)
    gaps = [b - a for times in polls.values() for a, b in zip(times, times[1:])]
    assert gaps and min(gaps) >= 0.1


def test_many_tasks_are_followed_by_a_few_threads(
        tmp_path: Path, client: RunwayClient, journal: SqliteStore, follower: TaskFollower) -> None:
    """Twenty tasks at once are followed by the follower's four threads, all to SUCCEEDED."""
    records = [submitted(tmp_path, client, journal, f"m{n}.png", seed=n) for n in range(20)]
    follow_all(follower, *records)
    workers = [t for t in threading.enumerate() if t.name.startswith("runwatchd-tasks-")]
    assert 4 == len(workers)
    assert ended(journal, *records, timeout=20)


def test_following_twice_polls_once(tmp_path: Path, client: RunwayClient,
                                    journal: SqliteStore) -> None:
    """follow() of a task already followed adds nothing (recovery and a rescan may both ask)."""
    follower = TaskFollower(ClientRef(client), journal, Pauses(), poll_interval=POLL)
    record = submitted(tmp_path, client, journal)
    follow_all(follower, record)
    follow_all(follower, record)
    assert 1 == follower.pending()


def test_failed_download_is_retried_with_fresh_urls(
        tmp_path: Path, emulator: Emulator, client: RunwayClient, journal: SqliteStore,
        follower: TaskFollower) -> None:
    """Output downloads failing for a while: the task is fetched again and the download redone."""
    emulator.set_faults(error_rate=1.0, error_status=503, scope=["outputs"])
    record = submitted(tmp_path, client, journal)
    follow_all(follower, record)
    assert wait_for(lambda: "downloading outputs failed" in (journal.get(record.path).error or ""),
                    timeout=10)
    emulator.set_faults(error_rate=0.0)
    assert ended(journal, record, state="succeeded")
    assert journal.get(record.path).error is None
    assert [] == [p for p in tmp_path.rglob("*") if fsutil.TEMP_MARK in p.name]


def test_a_replaced_file_drops_its_old_task(
        tmp_path: Path, client: RunwayClient, journal: SqliteStore, follower: TaskFollower) -> None:
    """When the journal row moved on to another task, the old one is no longer polled."""
    record = submitted(tmp_path, client, journal)
    journal.update(record.path, task_id="another-task", state="running")
    follow_all(follower, record)
    assert wait_for(lambda: follower.pending() == 0, timeout=5)
    assert "another-task" == journal.get(record.path).task_id


def test_no_sidecar_for_a_deleted_file(
        tmp_path: Path, client: RunwayClient, journal: SqliteStore, follower: TaskFollower) -> None:
    """The media was deleted while its task ran: the outputs come home, no orphan sidecar."""
    record = submitted(tmp_path, client, journal)
    Path(record.path).unlink()
    sidecar.sidecar_path(Path(record.path)).unlink(missing_ok=True)
    follow_all(follower, record)
    assert ended(journal, record, state="succeeded")
    assert not sidecar.sidecar_path(Path(record.path)).exists()
    assert (tmp_path / "hot" / "renders" / "shot.png.mp4").exists()
