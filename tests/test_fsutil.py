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




def test_temp_names_carry_their_maker(tmp_path: Path) -> None:
    """A temp name says which process made it: its pid and its start time."""
    name = fsutil.temp_path_for(tmp_path / "shot.jpg.runway.json").name
    assert ((os.getpid(), fsutil.process_start(os.getpid())), os.getpid()) == (
        fsutil.temp_owner_and_start(name), fsutil.temp_owner(name))


def test_a_cut_temp_name_keeps_its_maker(tmp_path: Path) -> None:
    """Cutting a long name to fit NAME_MAX cuts the file's name, never the owner."""
    name = fsutil.temp_path_for(tmp_path / ("é" * 127 + "x")).name
    assert os.getpid() == fsutil.temp_owner(name)


def test_old_style_and_foreign_names_have_no_owner() -> None:
    """An old-style temp is still ours but names no owner; other names are not temps at all."""
    old = ".shot.png.runway.json.runwatchd-tmp-0123456789ab"
    assert (True, None, False) == (fsutil.is_temp_name(old), fsutil.temp_owner(old),
                                   fsutil.temp_owner_alive(old))
    assert (None, None) == (fsutil.temp_owner("shot.png-4242-1-0123456789ab"),
                            fsutil.temp_owner("shot.runwatchd-tmp-42-1-0123456789ab"))


def test_a_temp_of_this_process_is_alive(tmp_path: Path) -> None:
    """This process's own temps are never a dead process's."""
    assert fsutil.temp_owner_alive(fsutil.temp_path_for(tmp_path / "a").name)


def test_a_temp_of_a_reused_pid_is_dead() -> None:
    """Same pid, another start time: the pid was reused, the maker is gone."""
    start = fsutil.process_start(os.getpid())
    assert start is not None
    name = f".a{fsutil.TEMP_MARK}-{os.getpid()}-{start + 1}-0123456789ab"
    assert not fsutil.temp_owner_alive(name)


def test_process_start_of_a_gone_pid_is_none() -> None:
    """A pid no process has (above pid_max) has no start time."""
    assert fsutil.process_start(2**22 + 1) is None


def test_without_proc_a_temp_is_alive_while_its_pid_exists(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    """Without /proc only the pid can be checked: any live pid keeps its temp, a gone one not."""
    monkeypatch.setattr(fsutil, "_PROC", str(tmp_path / "no-proc"))
    live = f".a{fsutil.TEMP_MARK}-1-0-0123456789ab"
    gone = f".a{fsutil.TEMP_MARK}-{2**22 + 1}-0-0123456789ab"
    assert (True, False) == (fsutil.temp_owner_alive(live), fsutil.temp_owner_alive(gone))


@pytest.mark.parametrize("pid", [0, -1, True, "123", None])
def test_pid_exists_asks_only_about_one_real_pid(pid: object) -> None:
    """0 and -1 would ask kill() about a process group; a bool or a string is no pid at all."""
    assert False is fsutil.pid_exists(pid)


def test_pid_exists_sees_this_process() -> None:
    """The running process exists."""
    assert True is fsutil.pid_exists(os.getpid())
