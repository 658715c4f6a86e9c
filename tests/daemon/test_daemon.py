"""The daemon in-process against the in-process emulator: observers, settle, workers, lifecycle."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_helpers import Runner, uploads
from helpers import drop, wait_for
from helpers import has_sidecar as done

from runwatchd.daemon.core import Daemon
from runwatchd.daemon.policy import Scope
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.processor import Job
from runwatchd.lifecycle.states import Ending
from runwatchd.watch import folders as folders_mod
from runwatchd.watch import mounts
from runwatchd.watch.folders import Folder

OVERFLOW_TEXT = "Inotify queue overflowed; filesystem events were lost"


def messages(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


@pytest.fixture
def deaf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Observers run but their events are lost: only scans can find files."""
    monkeypatch.setattr(Folder, "_event", lambda self, path, closed: None)


# -- sources of candidates -----------------------------------------------------------------------

def test_overflow_warning_triggers_a_rescan(runner: Runner, tmp_path: Path, deaf: None) -> None:
    """watchdog's overflow log line (no event reaches us) makes the daemon rescan its folders."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.start(runner.config([hot], rescan_interval=0))
    shot = drop(hot / "sub" / "shot.jpg")
    logging.getLogger("watchdog.observers.inotify_c").warning(OVERFLOW_TEXT)
    assert wait_for(lambda: done(shot), 10)


def test_periodic_reconcile_scan_finds_what_events_missed(
        runner: Runner, tmp_path: Path, deaf: None) -> None:
    """With every event lost, the rescan_interval scan still finds and uploads new files."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.start(runner.config([hot], rescan_interval=0.3))
    shot = drop(hot / "deep" / "er" / "shot.jpg")
    assert wait_for(lambda: done(shot), 10)


def test_file_changed_after_its_sidecar_is_uploaded_again(runner: Runner, tmp_path: Path) -> None:
    """A file rewritten after its sidecar, or whose sidecar was deleted, is uploaded again."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.start(runner.config([hot], rescan_interval=0.3))
    shot = drop(hot / "shot.jpg")
    assert wait_for(lambda: done(shot), 10)
    first = sidecar.read_sidecar(shot)
    shot.write_bytes(os.urandom(800))
    new_sha = hashlib.sha256(shot.read_bytes()).hexdigest()
    assert wait_for(lambda: (sidecar.read_sidecar(shot) or {}).get("file", {}).get("sha256")
                    == new_sha, 10)
    assert first["runway_uri"] != sidecar.read_sidecar(shot)["runway_uri"]
    assert 2 == uploads(runner.emu)
    sidecar.sidecar_path(shot).unlink()  # no event for the media file: the periodic scan sees it
    assert wait_for(lambda: done(shot), 10)
    assert 3 == uploads(runner.emu)


def test_dead_observer_is_restarted_and_followed_by_a_rescan(
        runner: Runner, tmp_path: Path, deaf: None, caplog: pytest.LogCaptureFixture) -> None:
    """An observer thread that died is replaced, and the rescan finds what it missed."""
    hot = tmp_path / "hot"
    hot.mkdir()
    daemon = runner.start(runner.config([hot], rescan_interval=0))
    folder = daemon.folders[0]
    old = folder._watcher
    assert old is not None
    shot = drop(hot / "missed.jpg")
    old._observer.stop()
    old._observer.join(5)
    assert wait_for(lambda: done(shot), 10)
    assert folder._watcher is not old and folder._watcher.is_alive()
    assert 1 == len(messages(caplog, f"the observer of {hot} died"))


def test_watch_limit_too_low_is_reported_with_sysctl_and_polls(
        runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A tree with more directories than inotify watches: one warning naming the sysctl, polling."""
    hot = tmp_path / "hot"
    for name in "abcde":
        (hot / name).mkdir(parents=True)
    monkeypatch.setattr(folders_mod, "inotify_watch_limit", lambda: 3)
    daemon = runner.start(runner.config([hot]))
    assert "polling" == daemon.folders[0].kind
    warnings = [m for m in messages(caplog, str(hot)) if "inotify watch limit" in m]
    assert 1 == len(warnings)
    assert "sudo sysctl fs.inotify.max_user_watches=" in warnings[0]
    shot = drop(hot / "c" / "shot.jpg")
    assert wait_for(lambda: done(shot), 10)


@pytest.mark.parametrize(("requested", "expected"), [("auto", "polling"), ("inotify", "inotify")])
def test_network_mount_is_polled_unless_overridden(
        runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        requested: str, expected: str) -> None:
    """`auto` polls a folder on NFS (inotify misses other hosts' writes); a folder may override."""
    hot = tmp_path / "hot"
    hot.mkdir()
    monkeypatch.setattr(mounts, "fs_type", lambda path, mountinfo_text=None: "nfs4")
    monkeypatch.setattr(folders_mod, "fs_type", lambda path, mountinfo_text=None: "nfs4")
    daemon = runner.start(runner.config([{"path": str(hot), "observer": requested}]))
    assert expected == daemon.folders[0].kind
    shot = drop(hot / "shot.jpg")
    assert wait_for(lambda: done(shot), 10)


# -- settling and workers ------------------------------------------------------------------------

def test_detected_settled_uploading_uploaded_logged_once_per_file(
        runner: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file written in 1000 chunks gives one line per state change, not one per event."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.start(runner.config([hot], settle_seconds=1.0))
    clip = hot / "clip.wav"
    with open(clip, "wb") as f:
        for _ in range(1000):
            f.write(b"x")
            f.flush()
    assert wait_for(lambda: done(clip), 10)
    # The "uploaded" line is logged just after the sidecar is written: wait for it too.
    assert wait_for(lambda: messages(caplog, f"uploaded {clip}"), 5)
    for state in ("detected", "settled", "uploading", "uploaded"):
        assert 1 == len([m for m in messages(caplog, f"{state} {clip}")]), state
    uri = sidecar.read_sidecar(clip)["runway_uri"]
    assert 1 == len(messages(caplog, f"uploaded {clip} -> {uri}"))


def test_a_file_still_being_written_blocks_no_other(runner: Runner, tmp_path: Path) -> None:
    """While one file keeps growing, others settle and upload; the grown file goes up whole."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.start(runner.config([hot], settle_seconds=1.0))  # far above the writer's pauses
    growing = hot / "growing.mp4"
    writing = threading.Event()
    finish = threading.Event()

    def writer() -> None:
        with open(growing, "wb") as f:
            while not finish.is_set():
                f.write(os.urandom(1000))
                f.flush()
                writing.set()
                finish.wait(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(5)
        others = [drop(hot / f"other{i}.jpg") for i in range(3)]
        assert wait_for(lambda: all(done(p) for p in others), 10)
        assert not done(growing)
    finally:
        finish.set()
        thread.join(5)
    assert wait_for(lambda: done(growing), 10)
    data = sidecar.read_sidecar(growing)
    assert hashlib.sha256(growing.read_bytes()).hexdigest() == data["file"]["sha256"]


def _gated(daemon: Daemon, gate: Callable[[Path], None]) -> None:
    real = daemon.processor.process

    def process(job: Job) -> Ending:
        gate(job.path)
        return real(job)

    daemon.processor.process = process  # type: ignore[method-assign]


def test_slow_upload_delays_no_detection(runner: Runner, tmp_path: Path) -> None:
    """One upload stuck for a long time: files dropped meanwhile are detected and uploaded."""
    hot = tmp_path / "hot"
    hot.mkdir()
    daemon = runner.start(runner.config([hot], concurrency=2))
    release = threading.Event()
    slow = hot / "slow.mov"
    _gated(daemon, lambda path: release.wait(30) if path == slow else None)
    try:
        drop(slow)
        assert wait_for(lambda: slow in daemon.scheduler.in_flight(), 10)
        quick = [drop(hot / "later" / f"q{i}.jpg") for i in range(5)]
        assert wait_for(lambda: all(done(p) for p in quick), 10)
        assert not done(slow)
    finally:
        release.set()
    assert wait_for(lambda: done(slow), 10)


def test_at_most_concurrency_uploads_in_flight(runner: Runner, tmp_path: Path) -> None:
    """[runway] concurrency bounds the uploads moving bytes at once, and the bound is used."""
    hot = tmp_path / "hot"
    hot.mkdir()
    lock = threading.Lock()
    now = {"in": 0, "max": 0}
    real = runner.emu.storage.receive

    def receive(*args: object, **kwargs: object) -> object:
        with lock:
            now["in"] += 1
            now["max"] = max(now["max"], now["in"])
        try:
            time.sleep(0.05)  # stands for a longer transfer, so uploads overlap
            return real(*args, **kwargs)
        finally:
            with lock:
                now["in"] -= 1

    runner.emu.storage.receive = receive  # type: ignore[method-assign]
    runner.start(runner.config([hot], concurrency=2))
    files = [drop(hot / f"f{i}.jpg") for i in range(8)]
    assert wait_for(lambda: all(done(p) for p in files), 15)
    assert 2 == now["max"]
    assert 8 == uploads(runner.emu)


def test_transient_failure_backs_off_and_a_rescan_does_not_cut_it_short(
        runner: Runner, tmp_path: Path) -> None:
    """A failed upload is retried when its backoff ends, not at the next scan or event."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.emu.set_faults(error_rate=1.0, scope=["storage"])
    daemon = runner.start(runner.config([hot], rescan_interval=0.1), attempts=1,
                          backoff=lambda attempts: 1.5)
    shot = drop(hot / "shot.jpg")
    assert wait_for(lambda: (r := daemon.journal.get(shot)) is not None and r.state == "failed", 10)
    record = daemon.journal.get(shot)
    assert 1 == record.attempts and "upload failed" in (record.error or "")
    runner.emu.set_faults(error_rate=0.0)
    assert wait_for(lambda: done(shot), 10)
    stored = [o for o in runner.emu.storage.objects().values() if o.filename == "shot.jpg"]
    assert 1 == len(stored)
    assert stored[0].created_at >= record.next_attempt


def test_restart_keeps_a_failed_file_and_its_backoff(
        runner: Runner, tmp_path: Path) -> None:
    """A file that failed before a restart is retried by the next daemon when its backoff ends."""
    hot = tmp_path / "hot"
    hot.mkdir()
    runner.emu.set_faults(error_rate=1.0, scope=["storage"])
    first = runner.start(runner.config([hot]), attempts=1, backoff=lambda attempts: 2.0)
    shot = drop(hot / "shot.jpg")
    assert wait_for(lambda: (r := first.journal.get(shot)) is not None and r.state == "failed", 10)
    next_attempt = first.journal.get(shot).next_attempt
    runner.stop(first)
    runner.emu.set_faults(error_rate=0.0)
    runner.start(runner.config([hot]))
    assert wait_for(lambda: done(shot), 10)
    stored = [o for o in runner.emu.storage.objects().values() if o.filename == "shot.jpg"]
    assert 1 == len(stored)
    assert stored[0].created_at >= next_attempt


def test_invalid_file_is_reported_once_until_it_changes(
        runner: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A permanent problem is logged and journaled once, rescans leave it, a change retries it."""
    hot = tmp_path / "hot"
    hot.mkdir()
    daemon = runner.start(runner.config([hot], rescan_interval=0.1))
    tiny = drop(hot / "tiny.jpg", 100)
    assert wait_for(lambda: (r := daemon.journal.get(tiny)) is not None and r.state == "invalid",
                    10)
    scans = len(messages(caplog, "periodic scan"))
    assert wait_for(lambda: len(messages(caplog, "periodic scan")) >= scans + 2, 10)
    assert 1 == len([m for m in messages(caplog, "skipped tiny.jpg") if "512 bytes" in m])
    assert "below Runway's minimum" in daemon.journal.get(tiny).error
    with open(tiny, "ab") as f:
        f.write(os.urandom(600))
    assert wait_for(lambda: done(tiny), 10)
    assert 1 == uploads(runner.emu)


def test_grace_period_ends_shutdown_with_uploads_still_running(
        runner: Runner, tmp_path: Path) -> None:
    """Shutdown waits for uploads in flight only up to grace_seconds, and says how many remain."""
    hot = tmp_path / "hot"
    hot.mkdir()
    daemon = runner.daemon(runner.config([hot], grace=0.3))
    release = threading.Event()
    _gated(daemon, lambda path: release.wait(30))
    thread = runner.launch(daemon)
    try:
        drop(hot / "stuck.jpg")
        assert wait_for(lambda: daemon.scheduler.in_flight(), 10)
        started = time.monotonic()
        thread.stop(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 3
        assert 1 == daemon.unfinished
    finally:
        release.set()  # the runner waits for the stuck worker, then closes


# -- scan mode -----------------------------------------------------------------------------------

def test_scan_covers_only_the_dirs_given_and_exits_by_outcome(runner: Runner,
                                                              tmp_path: Path) -> None:
    """scan of two DIRs in one folder: only those; exit 1 with a bad file, until it changes."""
    hot = tmp_path / "hot"
    a, b, c = (drop(hot / d / "shot.jpg") for d in ("a", "b", "c"))
    cfg = runner.config([hot])
    code, _ = runner.scan(cfg, scope=Scope.of(tops={hot: [hot / "a", hot / "b"]}))
    assert 0 == code
    assert (True, True, False) == (done(a), done(b), done(c))
    bad = drop(hot / "a" / "bad.jpg", 100)
    code, daemon = runner.scan(cfg, scope=Scope.of(tops={hot: [hot / "a"]}))
    assert 1 == code
    assert "below Runway's minimum" in daemon.book.failed_paths()[str(bad)]
    code, daemon = runner.scan(cfg, scope=Scope.of(tops={hot: [hot / "a"]}))
    assert 1 == code
    assert "recorded earlier" in daemon.book.failed_paths()[str(bad)]
    assert 2 == uploads(runner.emu)


def test_scan_only_named_files(runner: Runner, tmp_path: Path) -> None:
    """`only` (used by `runwatchd retry`) limits a scan to the named files."""
    hot = tmp_path / "hot"
    named, other = drop(hot / "named.jpg"), drop(hot / "other.jpg")
    code, _ = runner.scan(runner.config([hot]), scope=Scope.of(only={named}))
    assert 0 == code
    assert (True, False) == (done(named), done(other))


def test_scan_exits_1_when_uploads_fail(runner: Runner, tmp_path: Path) -> None:
    """A transient failure outlasting the client's retries: scan exits 1, naming the reason."""
    hot = tmp_path / "hot"
    shot = drop(hot / "shot.jpg")
    runner.emu.set_faults(error_rate=1.0, scope=["storage"])
    code, daemon = runner.scan(runner.config([hot]), attempts=1)
    assert 1 == code
    assert daemon.book.failed_paths()[str(shot)].startswith("upload failed")
