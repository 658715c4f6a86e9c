"""Tests for runwatchd.fsutil: atomic writes and stale temp cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runwatchd import fsutil


def test_temp_path_is_hidden_marked_and_beside(tmp_path: Path) -> None:
    """Temp names sit in the same directory, start with a dot and carry TEMP_MARK."""
    temp = fsutil.temp_path_for(tmp_path / "shot.jpg.runway.json")
    assert (tmp_path, True, True) == (temp.parent, temp.name.startswith(".shot.jpg.runway.json"),
                                      fsutil.TEMP_MARK in temp.name)


def test_temp_paths_differ(tmp_path: Path) -> None:
    """Two temp names for the same file never collide."""
    assert fsutil.temp_path_for(tmp_path / "a") != fsutil.temp_path_for(tmp_path / "a")


def test_temp_path_fits_name_max(tmp_path: Path) -> None:
    """A 255-byte final name still gives a temp name the filesystem accepts."""
    temp = fsutil.temp_path_for(tmp_path / ("é" * 127 + "x"))
    temp.write_bytes(b"ok")
    assert (True, True) == (len(os.fsencode(temp.name)) <= 255, fsutil.TEMP_MARK in temp.name)


def test_atomic_write_bytes_replaces(tmp_path: Path) -> None:
    """The new content replaces the old one and no temp file is left."""
    final = tmp_path / "out.json"
    final.write_bytes(b"old")
    fsutil.atomic_write_bytes(final, b"new")
    assert (b"new", ["out.json"]) == (final.read_bytes(), os.listdir(tmp_path))


def test_atomic_write_mode(tmp_path: Path) -> None:
    """The requested mode is applied (under the umask)."""
    final = tmp_path / "m"
    old = os.umask(0o022)
    try:
        fsutil.atomic_write_bytes(final, b"x", mode=0o600)
    finally:
        os.umask(old)
    assert 0o600 == final.stat().st_mode & 0o777


def test_atomic_writer_error_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    """An error inside the block removes the temp and keeps the old file intact."""
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError), fsutil.atomic_writer(final) as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert (b"old", ["out.bin"]) == (final.read_bytes(), os.listdir(tmp_path))


def test_atomic_writer_streams(tmp_path: Path) -> None:
    """Writes through the yielded file land in the final file only at the end."""
    final = tmp_path / "video.mp4"
    with fsutil.atomic_writer(final) as f:
        f.write(b"a" * 10)
        f.write(b"b" * 10)
        assert not final.exists()
    assert b"a" * 10 + b"b" * 10 == final.read_bytes()


