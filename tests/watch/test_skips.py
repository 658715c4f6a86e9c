"""Files a folder sees and does not take: one INFO line each with the reason, and counts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from daemon_helpers import Runner
from helpers import wait_for

from runwatchd.service.metrics import Metrics
from runwatchd.watch import skips
from runwatchd.watch.scan import FileFilter, scan_tree
from runwatchd.watch.skips import SkipLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("not taking")]


def test_one_line_per_version(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same version seen many times is one line; a rewrite later is another."""
    caplog.set_level(logging.INFO)
    clock, counted = Clock(), []
    log = SkipLog(counted.append, clock=clock)
    f = tmp_path / "a.gif"
    f.write_bytes(b"GIF89a")
    for _ in range(3):
        log.report(f, skips.NOT_INCLUDED, "type not included")
    clock.now = 100.0
    f.write_bytes(b"GIF89a plus more")
    log.report(f, skips.NOT_INCLUDED, "type not included")
    assert [f"not taking {f}: type not included"] * 2 == lines(caplog)
    assert {skips.NOT_INCLUDED: 2} == log.counts()
    assert [skips.NOT_INCLUDED] * 2 == counted


def test_a_slow_copy_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file growing at every event (a copy in progress) is reported once."""
    caplog.set_level(logging.INFO)
    clock = Clock()
    log = SkipLog(clock=clock)
    f = tmp_path / "a.gif"
    for i in range(5):
        clock.now += 1.0
        with f.open("ab") as out:
            out.write(b"x" * 100)
        os.utime(f, ns=(i * 10**9, i * 10**9))
        log.report(f, skips.NOT_INCLUDED, "type not included")
    assert 1 == len(lines(caplog))


def test_a_vanished_file_is_not_reported(tmp_path: Path) -> None:
    """A temp file gone before it is looked at gets no line."""
    log = SkipLog()
    assert False is log.report(tmp_path / "gone.gif", skips.NOT_INCLUDED, "type not included")
    assert {} == log.counts()


def test_memory_is_bounded(tmp_path: Path) -> None:
    """A folder of countless refused files does not grow the log without bound."""
    log = SkipLog(remembered=3)
    for i in range(10):
        f = tmp_path / f"{i}.gif"
        f.write_bytes(b"x")
        log.report(f, skips.NOT_INCLUDED, "type not included")
    assert 10 == log.total()


@pytest.mark.parametrize(("name", "expected"), [
    ("clip.gif", skips.NOT_INCLUDED),
    ("draft_clip.mp4", skips.IGNORED),
    ("drafts_dir/shot.jpg", skips.IGNORED),
    ("out/shot.jpg", skips.RULE_OUTPUT),
    ("shot.jpg", None),  # wanted
    (".clip.mp4.AbC123", None),  # a built-in ignore (rsync's temp file): silent
    ("shot.jpg.runway.json", None),  # our own sidecar: silent
])
def test_refusal_reasons(tmp_path: Path, name: str, expected: str | None) -> None:
    """Each refused name gets its reason; wanted and built-in ignored names get none."""
    filt = FileFilter(tmp_path, ["*.jpg", "*.mp4"], ["draft_*", "drafts_dir"],
                      exclude_dirs=[tmp_path / "out"])
    why = filt.refusal(tmp_path / name)
    assert expected == (why[0] if why else None)


def test_refusal_names_the_suffix_and_pattern(tmp_path: Path) -> None:
    """The words name the file's type, or the ignore pattern it matched."""
    filt = FileFilter(tmp_path, ["*.jpg"], ["draft_*"])
    assert (skips.NOT_INCLUDED, "type not included (.gif matches no include pattern)") == \
        filt.refusal(tmp_path / "a.GIF")
    assert (skips.IGNORED, "ignored name (matches ignore pattern 'draft_*')") == \
        filt.refusal(tmp_path / "draft_a.jpg")


def test_scan_hands_refused_files_over(tmp_path: Path) -> None:
    """scan_tree hands every refused file to on_refused and yields only wanted ones."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.gif").write_bytes(b"x")
    refused: list[Path] = []
    found = [p for p, _ in scan_tree(tmp_path, True, FileFilter(tmp_path, ["*.jpg"]),
                                     lambda p, e: refused.append(p))]
    assert [tmp_path / "a.jpg"] == found
    assert [tmp_path / "b.gif"] == refused


def test_metrics_count_by_reason() -> None:
    """Every reason has a series from the start; a report adds one."""
    m = Metrics(process_metrics=False)
    m.file_not_taken(skips.IGNORED)
    text = m.exposition()[0].decode()
    assert 'runwatchd_files_not_taken_total{reason="ignored"} 1.0' in text
    assert 'runwatchd_files_not_taken_total{reason="not_included"} 0.0' in text


def test_a_gif_dropped_in_a_watched_folder_is_one_line(
        runner: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A .gif dropped while the daemon watches gives one INFO line naming why, and a count."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    daemon = runner.start(runner.config([inbox]))
    gif = inbox / "anim.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * 100)
    wait_for(lambda: lines(caplog))
    daemon.reconciler.scan(daemon.folders.folder_for(gif), "test")  # a rescan: no second line
    records = [r for r in caplog.records if r.getMessage().startswith("not taking")]
    assert [(logging.INFO, f"not taking {gif}: type not included (.gif matches no include "
             "pattern)")] == [(r.levelno, r.getMessage()) for r in records]
    assert {skips.NOT_INCLUDED: 1} == daemon.skips.counts()
    assert "1 not taken" in daemon.health.status_line()


def test_a_catch_up_scan_reports_what_is_there(
        runner: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Files already there at start-up that are not taken get their line too."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("hello")
    code, daemon = runner.scan(runner.config([inbox]))
    assert 0 == code
    assert [f"not taking {inbox / 'notes.txt'}: type not included (.txt matches no include "
            "pattern)"] == lines(caplog)
