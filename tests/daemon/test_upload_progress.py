"""Upload progress in the daemon: log lines for big uploads, bytes and percent in status."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from runwatchd.daemon.upload_meter import UploadMeter
from runwatchd.lifecycle.states import Outcome
from runwatchd.service import status
from runwatchd.service.health import FolderView, Health, Snapshot
from runwatchd.service.sizes import human_size, iso_time

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def big_file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "master.mov"
    with path.open("wb") as f:
        f.truncate(size)  # sparse: the size is what counts
    return path


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "upload_progress"]


def test_a_big_upload_logs_progress_every_few_seconds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Over the threshold: a line every 5 s with percent, MiB and MiB/s; not more often."""
    caplog.set_level(logging.INFO)
    clock = Clock()
    meter = UploadMeter(clock=clock, min_bytes=100 * MIB)
    path = big_file(tmp_path, 200 * MIB)
    add = meter.progress_for(path)
    for _ in range(10):  # 10 MiB a second for 10 s
        clock.now += 1.0
        add(10 * MIB)
    assert [f"uploading {path}: 25% (50.0 MiB of 200.0 MiB, 10.0 MiB/s)",
            f"uploading {path}: 50% (100.0 MiB of 200.0 MiB, 10.0 MiB/s)"] == \
        [r.getMessage() for r in progress_lines(caplog)]
    last = progress_lines(caplog)[-1]
    assert (str(path), 100 * MIB, 200 * MIB, 50.0) == (
        last.__dict__["path"], last.__dict__["bytes_sent"], last.__dict__["bytes"],
        last.__dict__["percent"])
    assert {str(path): (100 * MIB, 200 * MIB)} == meter.snapshot()


def test_a_small_upload_logs_no_progress(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Under the threshold an upload is over before a line would help."""
    caplog.set_level(logging.INFO)
    clock = Clock()
    meter = UploadMeter(clock=clock, min_bytes=100 * MIB)
    add = meter.progress_for(big_file(tmp_path, 10 * MIB))
    clock.now += 60.0
    add(10 * MIB)
    assert [] == progress_lines(caplog)


def test_a_forgotten_upload_stays_forgotten(tmp_path: Path) -> None:
    """A late callback after the worker is done does not bring the upload back."""
    meter = UploadMeter()
    path = big_file(tmp_path, 1000)
    add = meter.progress_for(path)
    meter.forget(path)
    add(500)
    assert {} == meter.snapshot()


def snapshot(uploads: dict[str, tuple[int, int]]) -> Snapshot:
    return Snapshot(folders=(FolderView(Path("/in"), "inotify", "watching", True),),
                    in_flight=frozenset(Path(p) for p in uploads), waiting=0, tasks=0,
                    outcomes={Outcome.UPLOADED: 1}, paused=None, follower_alive=True,
                    last_progress=0.0, uploads=uploads)


def test_status_shows_bytes_and_percent_per_upload(tmp_path: Path) -> None:
    """status.json has bytes and percent per upload; text shows human sizes, JSON ISO times."""
    health = Health(lambda: snapshot({"/in/master.mov": (50 * MIB, 200 * MIB)}),
                    state_dir=tmp_path, watching=True, beat_clock=lambda: 1e9)
    health.own_status_file()
    health.heartbeat()
    written = json.loads((tmp_path / status.STATUS_FILE).read_text())
    assert [{"path": "/in/master.mov", "bytes_sent": 50 * MIB, "bytes_total": 200 * MIB,
             "percent": 25.0}] == written["uploads"]
    found = status.collect_status(tmp_path)
    assert "  uploading /in/master.mov: 25% (50.0 MiB of 200.0 MiB)" in status.render(found)
    as_json = json.loads(status.render(found, as_json=True))
    assert as_json["daemon"]["updated_at"].endswith("Z")
    assert as_json["daemon"]["uploads"][0]["percent"] == 25.0


def test_human_sizes_and_iso_times() -> None:
    """Binary units as ls -h; ISO-8601 UTC with milliseconds; junk is None, not a crash."""
    assert ["512 B", "1.5 KiB", "200.0 MiB", "4.0 GiB"] == [
        human_size(n) for n in (512, 1536, 200 * MIB, 4 * 1024 * MIB)]
    assert "1970-01-01T00:00:01.500Z" == iso_time(1.5)
    assert (None, None, None) == (iso_time("x"), iso_time(None), iso_time(1e300))


def test_a_finished_upload_is_timed_from_first_to_last_byte(tmp_path: Path) -> None:
    """forget() after the last byte reports the upload's time; an unfinished one is not timed."""
    clock, took = Clock(), []
    meter = UploadMeter(clock=clock, on_done=took.append)
    done, cut = big_file(tmp_path, 1000), tmp_path / "cut.mov"
    cut.write_bytes(bytes(1000))
    add, add_cut = meter.progress_for(done), meter.progress_for(cut)
    clock.now = 7.5
    add(1000)
    add_cut(500)
    clock.now = 9.0  # the sidecar and the journal take their time: not part of the upload
    meter.forget(done)
    meter.forget(cut)
    assert [7.5] == took
