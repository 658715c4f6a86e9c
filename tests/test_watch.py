"""Filtering, mount detection, scanning and real observers (inotify and polling) on temp dirs."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runwatchd import watch
from runwatchd.watch import (
    BUILTIN_IGNORE,
    FileFilter,
    FolderWatcher,
    choose_observer,
    count_dirs,
    fs_type,
    inotify_watch_limit,
    install_overflow_hook,
    scan_tree,
)

INCLUDE = ("*.jpg", "*.mov", "*.mp4")
OVERFLOW_TEXT = "Inotify queue overflowed; filesystem events were lost"


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


# -- mounts --------------------------------------------------------------------------------------

def mountinfo(tmp_path: Path) -> str:
    for d in ("nas/local", "my share", "nasx", "over"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    t = str(tmp_path)
    return "\n".join([
        "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        f"30 22 0:50 / {t}/nas rw,relatime shared:5 - nfs4 srv:/export rw,vers=4.2",
        f"31 30 8:1 / {t}/nas/local rw - ext4 /dev/sdb1 rw",
        f"32 22 0:51 / {t.replace(' ', chr(92) + '040')}/my\\040share rw - cifs //srv/share rw",
        f"33 22 0:52 / {t}/nasx rw - tmpfs tmpfs rw",
        f"34 22 0:53 / {t}/over rw - ext4 /dev/sdc rw",
        f"35 34 0:54 / {t}/over rw - fuse.sshfs host: rw",
    ])


def test_fs_type_longest_prefix(tmp_path: Path) -> None:
    """The deepest mount point holding the path wins; /x/nasx is not under /x/nas."""
    text = mountinfo(tmp_path)
    assert "nfs4" == fs_type(tmp_path / "nas", text)
    assert "nfs4" == fs_type(tmp_path / "nas" / "a.jpg", text)
    assert "ext4" == fs_type(tmp_path / "nas" / "local", text)
    assert "tmpfs" == fs_type(tmp_path / "nasx", text)
    assert "ext4" == fs_type(tmp_path, text)


def test_fs_type_unescapes_and_walks_up(tmp_path: Path) -> None:
    """\\040 in a mount point is a space; a path that does not exist yet uses its parent's mount."""
    text = mountinfo(tmp_path)
    assert "cifs" == fs_type(tmp_path / "my share" / "new" / "dir", text)


def test_fs_type_last_mount_on_top_wins(tmp_path: Path) -> None:
    """A later mount over the same mount point hides the earlier one."""
    assert "fuse.sshfs" == fs_type(tmp_path / "over", mountinfo(tmp_path))


def test_fs_type_resolves_symlinks(tmp_path: Path) -> None:
    """A symlink into a NAS mount is on the NAS."""
    text = mountinfo(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "nas")
    assert "nfs4" == fs_type(tmp_path / "link", text)


def test_fs_type_of_real_mount(tmp_path: Path) -> None:
    """Reading the real /proc/self/mountinfo gives a type for a temp dir."""
    assert "unknown" != fs_type(tmp_path)


def test_choose_observer(tmp_path: Path) -> None:
    """auto polls on network filesystems and uses inotify elsewhere; explicit choices stand."""
    text = mountinfo(tmp_path)
    assert "polling" == choose_observer(tmp_path / "nas", "auto", text)
    assert "polling" == choose_observer(tmp_path / "my share", "auto", text)
    assert "inotify" == choose_observer(tmp_path / "nas" / "local", "auto", text)
    assert "inotify" == choose_observer(tmp_path / "nas", "inotify", text)
    assert "polling" == choose_observer(tmp_path, "polling", text)
    with pytest.raises(ValueError, match="fanotify"):
        choose_observer(tmp_path, "fanotify", text)


def test_inotify_watch_limit() -> None:
    """On Linux the watch limit is a positive number."""
    limit = inotify_watch_limit()
    assert limit is not None and limit > 0


def test_count_dirs(tmp_path: Path) -> None:
    """Counts the root and every real subdirectory, not symlinks; stops at the limit."""
    for d in ("a/b/c", "d", "e"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    (tmp_path / "f.jpg").write_bytes(b"x")
    assert 6 == count_dirs(tmp_path, True, 1000)
    assert 1 == count_dirs(tmp_path, False, 1000)
    assert 3 == count_dirs(tmp_path, True, 3)


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

    monkeypatch.setattr(watch.os, "scandir", scandir)
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

