"""Which files a folder wants (FileFilter) and finding them on disk (scan_tree), on temp dirs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwatchd.watch import scan
from runwatchd.watch.scan import BUILTIN_IGNORE, FileFilter, scan_tree

INCLUDE = ("*.jpg", "*.mov", "*.mp4")


# -- FileFilter ----------------------------------------------------------------------------------

@pytest.fixture
def filt(tmp_path: Path) -> FileFilter:
    return FileFilter(tmp_path, INCLUDE, ignore=("raw",), exclude_dirs=[tmp_path / "renders"])


def test_include_matches_basename_at_any_depth_case_insensitive(filt: FileFilter, tmp_path: Path) -> None:
    """`*.mov` matches clip.MOV deep in subfolders (watchdog 7's full_match would not)."""
    assert filt.wants(tmp_path / "clip.mov")
    assert filt.wants(tmp_path / "a" / "b" / "c" / "CLIP.MOV")
    assert not filt.wants(tmp_path / "a" / "notes.txt")


def test_rsync_temp_ignored_but_its_final_name_wanted(filt: FileFilter, tmp_path: Path) -> None:
    """rsync's `.clip.mov.AbC123` is ignored, the `clip.mov` it is renamed to is wanted."""
    assert not filt.wants(tmp_path / "sub" / ".clip.mov.AbC123")
    assert filt.wants(tmp_path / "sub" / "clip.mov")


@pytest.mark.parametrize("rel", [
    "@eaDir/clip.mov/SYNOPHOTO_THUMB.jpg", "x/@eaDir/a.jpg", ".snapshot/hourly.0/a.jpg",
    "#recycle/a.jpg", "shot.jpg.runway.json", ".shot.jpg.runwatchd-tmp-1f2e", "a.jpg.part",
    "~$a.jpg", "._a.jpg", ".DS_Store", "sub/raw/a.jpg", "RAW/a.jpg", "a.runwatchd-tmp.jpg",
])
def test_ignored_components(filt: FileFilter, tmp_path: Path, rel: str) -> None:
    """Built-in and user ignore patterns apply to every component below the root."""
    assert not filt.wants(tmp_path / rel)


def test_ignore_is_relative_to_root(tmp_path: Path) -> None:
    """A root that is itself inside a dot folder still gets its files."""
    root = tmp_path / ".hidden" / "hot"
    assert FileFilter(root, INCLUDE).wants(root / "a.jpg")


def test_exclude_dirs(filt: FileFilter, tmp_path: Path) -> None:
    """Files under a rule output folder are never wanted; a sibling with a longer name is."""
    assert not filt.wants(tmp_path / "renders" / "a.mp4")
    assert not filt.wants(tmp_path / "renders" / "x" / "a.mp4")
    assert filt.wants(tmp_path / "renders2" / "a.mp4")
    assert not filt.wants_dir(tmp_path / "renders")
    assert filt.wants_dir(tmp_path / "renders2")


def test_outside_root_and_root_itself(filt: FileFilter, tmp_path: Path) -> None:
    """Paths outside the root are not wanted; the root is a wanted directory, not a file."""
    assert not filt.wants(tmp_path.parent / "a.jpg")
    assert not filt.wants(tmp_path)
    assert filt.wants_dir(tmp_path)
    assert not filt.wants_dir(tmp_path / "@eaDir")


def test_builtin_ignore_has_our_temp_mark() -> None:
    """The watcher ignores fsutil's temp files (literal kept in sync with fsutil.TEMP_MARK)."""
    assert "*.runwatchd-tmp*" in BUILTIN_IGNORE
    try:
        from runwatchd.fsutil import TEMP_MARK
    except ImportError:
        pytest.skip("runwatchd.fsutil not written yet")
    assert f"*{TEMP_MARK}*" in BUILTIN_IGNORE


# -- scan_tree -----------------------------------------------------------------------------------

def make_tree(root: Path) -> None:
    for rel in ("a.jpg", "sub/b.MOV", "sub/deep/c.mp4", "@eaDir/t.jpg", "renders/out.mp4",
                "sub/notes.txt", "sub/c.mp4.runway.json", "sub/.d.mp4.AbC123"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 10)


def rel_names(root: Path, found: Iterator[tuple[Path, os.stat_result]]) -> set[str]:
    return {str(p.relative_to(root)) for p, _st in found}


def test_scan_tree_finds_wanted_files(filt: FileFilter, tmp_path: Path) -> None:
    """Wanted files at any depth, ignored folders and output folders pruned, stat included."""
    make_tree(tmp_path)
    found = list(scan_tree(tmp_path, True, filt))
    assert {"a.jpg", "sub/b.MOV", "sub/deep/c.mp4"} == rel_names(tmp_path, iter(found))
    assert all(10 == st.st_size for _p, st in found)


def test_scan_tree_not_recursive(filt: FileFilter, tmp_path: Path) -> None:
    """recursive=False looks at the top folder only."""
    make_tree(tmp_path)
    assert {"a.jpg"} == rel_names(tmp_path, scan_tree(tmp_path, False, filt))


def test_scan_tree_special_files(filt: FileFilter, tmp_path: Path) -> None:
    """File symlinks are followed; broken links, FIFOs, dir symlinks and loops are skipped."""
    (tmp_path / "real.jpg").write_bytes(b"x")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "real.jpg")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "loop").symlink_to(tmp_path)
    (tmp_path / "dir.jpg").symlink_to(tmp_path / "d")
    assert {"real.jpg", "link.jpg"} == rel_names(tmp_path, scan_tree(tmp_path, True, filt))


def test_scan_tree_subfolder_top(filt: FileFilter, tmp_path: Path) -> None:
    """Scanning a subfolder (a moved-in directory) uses the filter's root for ignore rules."""
    make_tree(tmp_path)
    assert {"sub/b.MOV", "sub/deep/c.mp4"} == rel_names(tmp_path, scan_tree(tmp_path / "sub", True, filt))
    assert set() == rel_names(tmp_path, scan_tree(tmp_path / "@eaDir", True, filt))


def test_scan_tree_unreadable_dir_warns_once_and_continues(
    filt: FileFilter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory that cannot be read costs one warning; the rest of the tree is scanned."""
    make_tree(tmp_path)
    real_scandir = os.scandir
    locked = str(tmp_path / "sub")

    def scandir(path: str) -> object:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(scan.os, "scandir", scandir)
    found = rel_names(tmp_path, scan_tree(tmp_path, True, filt))
    monkeypatch.undo()
    assert {"a.jpg"} == found
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 == len(warnings)
    assert locked in warnings[0].getMessage()


def test_scan_tree_missing_root_warns(filt: FileFilter, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A missing folder is an empty scan with a warning, never an exception."""
    assert [] == list(scan_tree(tmp_path / "gone", True, filt))
    assert "gone" in caplog.text
