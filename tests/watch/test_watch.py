"""Real observers (inotify and polling) on temp dirs, and the inotify overflow hook."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runwatchd.watch.observers import FolderWatcher, install_overflow_hook

OVERFLOW_TEXT = "Inotify queue overflowed; filesystem events were lost"


# -- overflow hook -------------------------------------------------------------------------------

def test_overflow_hook_calls_back_on_watchdog_warning() -> None:
    """watchdog's exact overflow warning triggers the callback; other warnings do not."""
    calls: list[int] = []
    uninstall = install_overflow_hook(lambda: calls.append(1))
    wd_log = logging.getLogger("watchdog.observers.inotify_c")
    wd_log.warning("something else")
    wd_log.warning(OVERFLOW_TEXT)
    assert [1] == calls
    uninstall()
    uninstall()
    wd_log.warning(OVERFLOW_TEXT)
    assert [1] == calls


def test_overflow_hook_survives_strict_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root at ERROR or a disabled watchdog logger do not hide overflows; levels are restored."""
    root = logging.getLogger()
    wd_log = logging.getLogger("watchdog.observers.inotify_c")
    monkeypatch.setattr(wd_log, "disabled", True)
    old_level = root.level
    root.setLevel(logging.ERROR)
    try:
        calls: list[int] = []
        uninstall = install_overflow_hook(lambda: calls.append(1))
        wd_log.warning(OVERFLOW_TEXT)
        uninstall()
    finally:
        root.setLevel(old_level)
    assert [1] == calls
    assert logging.NOTSET == wd_log.level


def test_overflow_callback_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A failing callback is logged, not raised into watchdog's reader thread."""
    def boom() -> None:
        raise RuntimeError("boom")

    uninstall = install_overflow_hook(boom)
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning(OVERFLOW_TEXT)
    finally:
        uninstall()
    assert "overflow callback failed" in caplog.text


# -- FolderWatcher -------------------------------------------------------------------------------

class Recorder:
    """Collects watcher callbacks in a queue; `expect` waits for one with a deadline."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Path, bool]] = queue.Queue()
        self.seen: list[tuple[str, Path, bool]] = []
        self.overflows = threading.Event()
        self.fail_next = 0

    def on_path(self, path: Path, closed: bool) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("handler bug")
        self.q.put(("path", path, closed))

    def on_dir(self, path: Path) -> None:
        self.q.put(("dir", path, False))

    def on_overflow(self) -> None:
        self.overflows.set()

    def expect(self, kind: str, path: Path, closed: bool | None = None, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for item in self.seen:
            if item[:2] == (kind, path) and closed in (None, item[2]):
                return
        while True:
            try:
                item = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {kind} event for {path} (closed={closed}) within {timeout} s; "
                            f"got {self.seen}")
            self.seen.append(item)
            if item[:2] == (kind, path) and closed in (None, item[2]):
                return

    def drain(self) -> list[tuple[str, Path, bool]]:
        while not self.q.empty():
            self.seen.append(self.q.get_nowait())
        return self.seen


@pytest.fixture
def hot(tmp_path: Path) -> Path:
    (tmp_path / "hot").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path / "hot"


@pytest.fixture
def make_watcher(hot: Path) -> Iterator[Callable[..., tuple[FolderWatcher, Recorder]]]:
    started: list[FolderWatcher] = []

    def make(kind: str, recursive: bool = True, root: Path = hot) -> tuple[FolderWatcher, Recorder]:
        rec = Recorder()
        w = FolderWatcher(root, recursive=recursive, kind=kind, poll_interval=0.1,
                          on_path=rec.on_path, on_overflow=rec.on_overflow, on_dir=rec.on_dir)
        w.start()
        started.append(w)
        return w, rec

    yield make
    for w in started:
        w.stop()
        w.join(5.0)


KINDS = pytest.mark.parametrize("kind", ["inotify", "polling"])


@KINDS
def test_created_file_reported(make_watcher: Callable, hot: Path, kind: str) -> None:
    """Creating a file in a subfolder reports its path."""
    w, rec = make_watcher(kind)
    (hot / "sub").mkdir()
    (hot / "sub" / "a.jpg").write_bytes(b"x" * 100)
    rec.expect("path", hot / "sub" / "a.jpg")
    assert w.is_alive()


def test_close_write_reported_as_closed(make_watcher: Callable, hot: Path) -> None:
    """inotify's close_write arrives as on_path(path, closed=True)."""
    _w, rec = make_watcher("inotify")
    (hot / "a.jpg").write_bytes(b"x" * 100)
    rec.expect("path", hot / "a.jpg", closed=True)


@KINDS
def test_mv_into_tree_reports_destination(make_watcher: Callable, hot: Path, kind: str) -> None:
    """A file moved in from outside the tree (only a created event) is reported."""
    _w, rec = make_watcher(kind)
    src = hot.parent / "outside" / "clip.mov"
    src.write_bytes(b"x" * 100)
    os.rename(src, hot / "clip.mov")
    rec.expect("path", hot / "clip.mov")


@KINDS
def test_rename_of_temp_reports_destination(make_watcher: Callable, hot: Path, kind: str) -> None:
    """rsync's final rename `.clip.mov.AbC123 -> clip.mov` reports clip.mov."""
    _w, rec = make_watcher(kind)
    tmp = hot / ".clip.mov.AbC123"
    tmp.write_bytes(b"x" * 100)
    rec.expect("path", tmp)  # the watcher is dumb: the daemon's filter drops this one
    os.rename(tmp, hot / "clip.mov")
    rec.expect("path", hot / "clip.mov")


@KINDS
def test_directory_moved_in_calls_on_dir(make_watcher: Callable, hot: Path, kind: str) -> None:
    """A folder moved in calls on_dir with its new path, and its files are reported too."""
    _w, rec = make_watcher(kind)
    src = hot.parent / "outside" / "batch"
    (src / "deeper").mkdir(parents=True)
    (src / "a.jpg").write_bytes(b"x")
    (src / "deeper" / "b.jpg").write_bytes(b"x")
    os.rename(src, hot / "batch")
    rec.expect("dir", hot / "batch")
    rec.expect("path", hot / "batch" / "a.jpg")
    rec.expect("path", hot / "batch" / "deeper" / "b.jpg")


@KINDS
def test_directory_renamed_inside_tree(make_watcher: Callable, hot: Path, kind: str) -> None:
    """Renaming a folder inside the tree calls on_dir with the destination."""
    (hot / "incoming").mkdir()
    (hot / "incoming" / "a.jpg").write_bytes(b"x")
    _w, rec = make_watcher(kind)
    os.rename(hot / "incoming", hot / "done")
    rec.expect("dir", hot / "done")


@KINDS
def test_handler_exception_does_not_kill_observer(
    make_watcher: Callable, hot: Path, kind: str, caplog: pytest.LogCaptureFixture,
    wait_for: Callable,
) -> None:
    """A callback that raises is logged; the next event still arrives."""
    w, rec = make_watcher(kind)
    rec.fail_next = 1
    (hot / "first.jpg").write_bytes(b"x")
    assert wait_for(lambda: "handler bug" in caplog.text)
    (hot / "second.jpg").write_bytes(b"x")
    rec.expect("path", hot / "second.jpg")
    assert w.is_alive()


@KINDS
def test_not_recursive_ignores_subfolders(make_watcher: Callable, hot: Path, kind: str) -> None:
    """A non-recursive watcher reports nothing from subfolders and no on_dir."""
    (hot / "sub").mkdir()
    _w, rec = make_watcher(kind, recursive=False)
    (hot / "sub2").mkdir()
    (hot / "sub" / "a.jpg").write_bytes(b"x")
    (hot / "sentinel.jpg").write_bytes(b"x")
    rec.expect("path", hot / "sentinel.jpg")
    assert [] == [item for item in rec.drain() if item[0] == "dir" or item[1].parent != hot]


@KINDS
def test_stop_and_join_leave_no_threads(make_watcher: Callable, hot: Path, kind: str) -> None:
    """stop() returns at once, join() waits for every observer thread (the leak guard checks)."""
    w, rec = make_watcher(kind)
    (hot / "a.jpg").write_bytes(b"x")
    rec.expect("path", hot / "a.jpg")
    w.stop()
    w.join(5.0)
    assert not w.is_alive()
    w.stop()  # twice is harmless


@KINDS
def test_deleted_root_makes_watcher_dead(
    make_watcher: Callable, hot: Path, kind: str, wait_for: Callable
) -> None:
    """When the watched folder disappears, is_alive() turns False so the daemon can react."""
    w, _rec = make_watcher(kind)
    assert w.is_alive()
    os.rmdir(hot)
    assert wait_for(lambda: not w.is_alive())


@KINDS
def test_start_on_missing_folder_raises(hot: Path, kind: str) -> None:
    """Starting on a missing folder raises FileNotFoundError and leaves no thread behind."""
    w = FolderWatcher(hot / "gone", recursive=True, kind=kind, poll_interval=0.1,
                      on_path=lambda p, c: None, on_overflow=lambda: None)
    with pytest.raises(FileNotFoundError):
        w.start()
    assert not w.is_alive()


def test_unknown_kind_rejected(hot: Path) -> None:
    """Only inotify and polling are observer kinds."""
    with pytest.raises(ValueError, match="kqueue"):
        FolderWatcher(hot, recursive=True, kind="kqueue", poll_interval=1.0,
                      on_path=lambda p, c: None, on_overflow=lambda: None)


def test_real_inotify_overflow_calls_on_overflow(make_watcher: Callable, hot: Path) -> None:
    """A real kernel queue overflow (reader stalled) reaches on_overflow through the log hook."""
    max_queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if max_queued > 100_000:
        pytest.skip(f"max_queued_events is {max_queued}: too slow to overflow")
    w, rec = make_watcher("inotify")
    files = [hot / "a.jpg", hot / "b.jpg"]
    for f in files:
        f.write_bytes(b"x")
    fd_thread = w._observer._inotify_fd  # stall watchdog's reader so the kernel queue fills up
    with fd_thread._lock:
        for i in range(2 * max_queued + 100):
            os.utime(files[i % 2])  # alternate files: the kernel merges identical consecutive events
    assert rec.overflows.wait(10.0)
    assert w.is_alive()


def test_overflow_of_other_thread_not_routed_to_watcher(make_watcher: Callable) -> None:
    """A watcher's on_overflow only fires for its own inotify reader's overflows."""
    _w, rec = make_watcher("inotify")
    logging.getLogger("watchdog.observers.inotify_c").warning(OVERFLOW_TEXT)
    assert not rec.overflows.is_set()

