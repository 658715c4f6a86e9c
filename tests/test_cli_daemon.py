"""`runwatchd run/scan/status` as real processes against an in-process emulator, on real files."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_process import KEY, Setup
from helpers import drop, wait_for
from helpers import has_sidecar as done

from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar

JUNK = (
    "clip.mov.part", "shot.jpg.tmp", "a.crdownload", ".DS_Store", "Thumbs.db", "~$shot.jpg",
    "._shot.jpg", ".hidden.jpg", "@eaDir/thumb.jpg", ".snapshot/old.jpg", "#recycle/gone.jpg",
    ".cache/deep/x.jpg", "notes.txt", "shot.prompt.txt", "orphan.jpg.runway.json",
    ".shot.jpg.runwatchd-tmp-1f2e3d",
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=KEY) as emu:
        yield emu


@pytest.fixture
def setup(tmp_path: Path, emulator: Emulator) -> Iterator[Setup]:
    s = Setup(tmp_path, emulator)
    yield s
    s.kill_all()


def check_uploaded_once(setup: Setup, files: list[Path]) -> None:
    """Every file has a sidecar naming an emulator object with its bytes, uploaded once."""
    objects = setup.emu.objects()
    names = sorted(o["filename"] for o in objects.values())
    assert sorted(p.name for p in files) == names
    for path in files:
        data = json.loads(sidecar.sidecar_path(path).read_text(encoding="utf-8"))
        obj = objects[data["runway_uri"]]
        assert (path.name, path.stat().st_size, sha(path)) == (
            obj["filename"], obj["size"], obj["sha256"])
        assert sha(path) == data["file"]["sha256"]


# -- done-when criteria --------------------------------------------------------------------------

@pytest.mark.parametrize("observer", ["inotify", "polling"])
def test_500_files_in_new_nested_folders_each_uploaded_exactly_once(
        setup: Setup, observer: str) -> None:
    """500 files dropped at once into folders created after the start: 500 sidecars, 500 uploads."""
    setup.write_config(observer=observer)
    daemon = setup.start()
    files = []
    for i in range(10):
        for j in range(5):
            for k in range(10):
                files.append(drop(setup.hot / f"d{i}" / f"e{j}" / f"s{i}-{j}-{k}.jpg",
                                  600 + (i * 50 + j * 10 + k) * 7))
    assert wait_for(lambda: all(done(p) for p in files), 90), daemon.log()[-3000:]
    stats = setup.stats()
    assert (500, 500) == (stats["uploads_created"], stats["uploads_completed"])
    check_uploaded_once(setup, files)
    assert 500 == daemon.count("INFO  runwatchd.daemon.core: detected ")
    assert 0 == daemon.stop()
    assert f"({observer}, settle" in daemon.log()


def test_writer_pausing_shorter_than_settle_time_is_uploaded_once_whole(setup: Setup) -> None:
    """10 chunks (each closed) with 0.5 s pauses, settle 2 s: one upload, of the whole file."""
    setup.write_config(settle_seconds=2.0)
    daemon = setup.start()
    clip = setup.hot / "clip.mov"
    for n in range(10):
        if n:
            time.sleep(0.5)  # the writer's pause, part of the scenario
        with open(clip, "ab") as f:
            f.write(os.urandom(1000))
    assert wait_for(lambda: done(clip), 15)
    stats = setup.stats()
    assert (1, 1) == (stats["uploads_created"], stats["uploads_completed"])
    check_uploaded_once(setup, [clip])
    assert 10000 == sidecar.read_sidecar(clip)["file"]["size"]
    assert 0 == daemon.stop()


@pytest.mark.parametrize("observer", ["inotify", "polling"])
def test_junk_is_never_uploaded_and_rsync_renames_go_up_under_their_final_name(
        setup: Setup, observer: str) -> None:
    """Temp and junk names stay local, scans included; an rsync temp renamed is uploaded by name."""
    setup.write_config(observer=observer, rescan_interval=0.5)
    daemon = setup.start()
    for rel in JUNK:
        drop(setup.hot / "in" / rel)
    temp = setup.hot / "in" / ".clip.mov.AbC123"
    with open(temp, "wb") as f:  # rsync writes a temp name slowly, then renames it
        for _ in range(4):
            f.write(os.urandom(500))
            f.flush()
            time.sleep(0.2)  # the writer's pace, part of the scenario
    clip = temp.with_name("clip.mov")
    os.rename(temp, clip)
    good = drop(setup.hot / "in" / "good.jpg")
    assert wait_for(lambda: done(clip) and done(good), 15), daemon.log()[-3000:]
    scans = daemon.count("periodic scan of")
    assert daemon.wait_log("periodic scan of", scans + 2)
    assert ["clip.mov", "good.jpg"] == sorted(o["filename"] for o in setup.emu.objects().values())
    assert 2 == setup.stats()["uploads_created"]
    check_uploaded_once(setup, [clip, good])
    assert 0 == daemon.stop()


def test_files_arriving_while_stopped_are_picked_up_and_a_finished_restart_uploads_nothing(
        setup: Setup) -> None:
    """Catch-up at start; a file changed after its sidecar goes up again; then zero upload calls."""
    setup.write_config()
    daemon = setup.start()
    first = [drop(setup.hot / "day1" / f"a{i}.jpg") for i in range(5)]
    assert wait_for(lambda: all(done(p) for p in first), 15)
    assert 0 == daemon.stop()
    later = [drop(setup.hot / "day2" / f"b{i}.jpg") for i in range(3)]
    changed = first[0]
    old_uri = sidecar.read_sidecar(changed)["runway_uri"]
    changed.write_bytes(os.urandom(900))
    daemon = setup.start()
    assert wait_for(lambda: all(done(p) for p in later)
                    and sidecar.read_sidecar(changed)["runway_uri"] != old_uri, 15)
    assert 0 == daemon.stop()
    assert 5 + 3 + 1 == setup.stats()["uploads_created"]
    before = setup.stats()["requests"].get("POST /v1/uploads", {})
    daemon = setup.start()
    assert daemon.wait_log("0 to look at")
    assert 0 == daemon.stop()
    assert before == setup.stats()["requests"].get("POST /v1/uploads", {})
    assert sidecar.read_sidecar(changed)["file"]["sha256"] == sha(changed)


def test_sigterm_during_a_burst_exits_0_within_10_s_and_loses_nothing(setup: Setup) -> None:
    """SIGTERM mid-burst: exit 0 within 10 s, in-flight uploads finish, nothing goes up twice."""
    setup.write_config(concurrency=4)
    setup.emu.set_faults(delay=0.2, scope=["storage"])
    daemon = setup.start()
    files = [drop(setup.hot / f"b{i // 50}" / f"f{i}.jpg") for i in range(200)]
    assert wait_for(lambda: setup.stats()["uploads_completed"] >= 8, 20)
    started = time.monotonic()
    assert 0 == daemon.stop(timeout=10)
    assert time.monotonic() - started < 10
    assert "upload(s) in flight" in daemon.log()
    stats = setup.stats()
    assert stats["uploads_created"] == stats["uploads_completed"]  # in-flight ones finished
    finished = [p for p in files if done(p)]
    assert len(finished) < len(files)
    check_uploaded_once(setup, finished)
    setup.emu.set_faults(delay=0.0)
    result = setup.cli("scan", "-c", str(setup.config))
    assert 0 == result.returncode, result.stderr[-3000:]
    assert all(done(p) for p in files)
    assert (200, 200) == (setup.stats()["uploads_created"], setup.stats()["uploads_completed"])
    check_uploaded_once(setup, files)


# -- status, reload, scan ------------------------------------------------------------------------

def test_status_is_readable_while_the_daemon_runs(setup: Setup) -> None:
    """`status` shows the running daemon, files in flight, counts per state and recent failures."""
    setup.write_config()
    setup.emu.set_faults(delay=4.0, scope=["storage"])  # longer than the 2 s status cadence
    daemon = setup.start()
    slow = drop(setup.hot / "slow.jpg")
    tiny = drop(setup.hot / "tiny.jpg", 100)

    def status() -> dict:
        result = setup.cli("status", "-c", str(setup.config), "--json")
        loaded = json.loads(result.stdout)
        assert (0 if loaded["running"] or loaded["owner"] else 3) == result.returncode, \
            result.stderr
        return loaded

    assert wait_for(lambda: str(slow) in (status()["daemon"] or {}).get("in_flight", []), 20)
    assert status()["running"]
    assert wait_for(lambda: done(slow), 20)
    assert wait_for(lambda: {"invalid": 1, "uploaded": 1} == status()["files"], 10)
    text = setup.cli("status", "-c", str(setup.config)).stdout
    assert "daemon: running" in text
    assert "files by state: invalid 1, uploaded 1" in text
    assert f"{tiny}: invalid: tiny.jpg: 100 bytes is below Runway's minimum" in text
    assert 0 == daemon.stop()
    assert not status()["running"]
    assert "daemon: not running" in setup.cli("status", "-c", str(setup.config)).stdout


def test_sighup_reload_adds_and_removes_folders(setup: Setup) -> None:
    """SIGHUP re-reads the config: a folder added is watched (and scanned), one removed is not."""
    old, new = setup.hot / "old", setup.hot / "new"
    old.mkdir()
    new.mkdir()
    setup.write_config([{"path": str(old)}])
    daemon = setup.start()
    before = drop(new / "before.jpg")
    setup.write_config([{"path": str(new)}], rescan_interval=0.5)
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_log("configuration reloaded")
    assert wait_for(lambda: done(before), 10)
    ignored = drop(old / "ignored.jpg")
    fresh = drop(new / "fresh.jpg")
    assert wait_for(lambda: done(fresh), 10)
    scans = daemon.count(f"periodic scan of {new}")
    assert daemon.wait_log(f"periodic scan of {new}", scans + 1)
    assert not done(ignored)
    assert f"stopped watching {old}" in daemon.log()
    assert 0 == daemon.stop()
    assert 2 == setup.stats()["uploads_created"]


def test_scan_exit_codes_and_dirs(setup: Setup) -> None:
    """scan: 0 if all succeed, 1 with the failure on stderr; DIRs limit it; works without config."""
    setup.write_config()
    a, b, c = (drop(setup.hot / d / "shot.jpg") for d in ("a", "b", "c"))
    result = setup.cli("scan", "-c", str(setup.config), str(setup.hot / "a"), str(setup.hot / "b"))
    assert 0 == result.returncode, result.stderr[-2000:]
    assert (True, True, False) == (done(a), done(b), done(c))
    tiny = drop(setup.hot / "c" / "tiny.jpg", 100)
    result = setup.cli("scan", "-c", str(setup.config))
    assert 1 == result.returncode
    assert f"runwatchd: failed: {tiny}: tiny.jpg: 100 bytes is below" in result.stderr
    assert done(c)
    loose = drop(setup.tmp / "loose" / "clip.wav")
    setup.env["STATE_DIRECTORY"] = str(setup.tmp / "other-state")
    result = setup.cli("scan", str(loose.parent), cwd=loose.parent)  # no config file anywhere
    assert 0 == result.returncode, result.stderr[-2000:]
    assert done(loose)
    assert (setup.tmp / "other-state" / "journal.sqlite3").exists()
    assert 4 == setup.stats()["uploads_created"]
