"""Watch: which files a folder wants, how to find them (scan) and how to hear about them (observer).

The watcher is deliberately dumb: it turns watchdog events into `on_path(path, closed)` and
`on_dir(path)` calls and leaves every decision to `FileFilter` and the candidate table.
watchdog 7.1 pitfalls handled here:
- an exception escaping a handler kills the observer thread silently: the handler catches all;
- an inotify queue overflow is only logged (no event): `install_overflow_hook` listens to that log;
- `PurePath.full_match` patterns miss files in subfolders, and PatternMatchingEventHandler drops
  rsync's final rename when dotfiles are ignored: we match basenames ourselves, on the destination.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# fsutil.TEMP_MARK, spelled out so this module does not depend on fsutil's import order.
_TEMP_MARK = ".runwatchd-tmp"

BUILTIN_IGNORE: tuple[str, ...] = (
    ".*",  # dotfiles: rsync temps (".clip.mov.AbC123"), ".nfs*" silly renames, "._*" AppleDouble
    "*.part", "*.partial", "*.crdownload", "*.tmp", "~$*",
    ".nfs*", "._*", ".DS_Store", "Thumbs.db",
    "@eaDir", "#recycle", ".snapshot",  # Synology / NetApp metadata folders
    "*.runway.json", "*.prompt.txt", "runwatchd.rules.toml",  # our own sidecars and inputs
    f"*{_TEMP_MARK}*",
)

# Filesystems where inotify does not see changes made by other machines (or the VM host).
NETWORK_FS: frozenset[str] = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "coda", "9p", "virtiofs", "vboxsf",
    "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "ocfs2",
    "davfs", "fuse.davfs", "fuse.davfs2", "sshfs", "fuse.sshfs", "fuse.rclone", "fuse.s3fs",
    "fuse.gcsfuse", "fuse.goofys", "fuse.juicefs", "fuse.smbnetfs", "fuse.vmhgfs-fuse",
    "fuse.grpcfuse",
})

OBSERVER_KINDS = ("inotify", "polling")
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
# Only the event kinds we act on: the daemon's own reads of every file it uploads would
# otherwise add IN_OPEN/IN_CLOSE_NOWRITE to the inotify queue and make overflows likelier.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileMovedEvent,
    DirCreatedEvent, DirMovedEvent,
]


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


def _under(path: str, dirs: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


class FileFilter:
    """Which paths below `root` a folder wants. Matching is case-insensitive, on names only."""

    def __init__(
        self,
        root: Path,
        include: Sequence[str],
        ignore: Sequence[str] = (),
        exclude_dirs: Sequence[Path] = (),
    ) -> None:
        self.root = Path(root)
        self._root = os.path.abspath(root)
        self._include = _compile(include)
        self._ignore = _compile((*BUILTIN_IGNORE, *ignore))
        excluded: set[str] = set()
        for d in exclude_dirs:
            excluded.add(os.path.abspath(d))
            excluded.add(os.path.realpath(d))  # a symlinked output dir is excluded either way
        self._exclude = tuple(sorted(excluded))

    def wants(self, path: Path) -> bool:
        """A file: include matches its name, no component below root is ignored, not an output."""
        parts = self._parts(path)
        if not parts:
            return False
        return self._name_wanted(parts[-1]) and self._dirs_wanted(parts[:-1], path)

    def wants_dir(self, path: Path) -> bool:
        """A directory worth descending into (root itself always is)."""
        parts = self._parts(path)
        if parts is None:
            return False
        return self._dirs_wanted(parts, path)

    def _name_wanted(self, name: str) -> bool:
        if self._ignore is not None and self._ignore.match(name):
            return False
        return self._include is not None and self._include.match(name) is not None

    def _dir_name_wanted(self, name: str) -> bool:
        return self._ignore is None or self._ignore.match(name) is None

    def _dirs_wanted(self, parts: Sequence[str], path: Path) -> bool:
        if not all(self._dir_name_wanted(p) for p in parts):
            return False
        return not (self._exclude and _under(os.path.abspath(path), self._exclude))

    def _parts(self, path: Path) -> list[str] | None:
        """Components below root ([] for root itself), None when outside root."""
        p = os.path.abspath(path)
        if p == self._root:
            return []
        prefix = self._root if self._root.endswith(os.sep) else self._root + os.sep
        if not p.startswith(prefix):
            return None
        return p[len(prefix):].split(os.sep)


# -- filesystem type -------------------------------------------------------------------------------

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _mounts(mountinfo_text: str) -> list[tuple[str, str]]:
    mounts = []
    for line in mountinfo_text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mounts.append((_unescape(fields[4]), right.split()[0]))
    return mounts


def _existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.resolve()


def fs_type(path: Path, mountinfo_text: str | None = None) -> str:
    """The filesystem type of the mount holding `path` ("ext4", "nfs4", ...; "unknown" if unsure)."""
    if mountinfo_text is None:
        try:
            mountinfo_text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "unknown"
    target = str(_existing(path))
    best, best_len = "unknown", -1
    for mount_point, fstype in _mounts(mountinfo_text):
        inside = (
            target == mount_point
            or mount_point == "/"
            or target.startswith(mount_point.rstrip("/") + "/")
        )
        # ">=": a later line for the same mount point is a mount on top of the earlier one.
        if inside and len(mount_point) >= best_len:
            best, best_len = fstype, len(mount_point)
    return best


def choose_observer(path: Path, requested: str, mountinfo_text: str | None = None) -> str:
    """"inotify" or "polling": "auto" polls on network filesystems, where inotify is blind."""
    if requested in OBSERVER_KINDS:
        return requested
    if requested != "auto":
        raise ValueError(f"observer must be auto, inotify or polling, not {requested!r}")
    fstype = fs_type(path, mountinfo_text)
    return "polling" if fstype in NETWORK_FS else "inotify"


def inotify_watch_limit() -> int | None:
    """fs.inotify.max_user_watches, or None where it cannot be read."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None


# -- scanning --------------------------------------------------------------------------------------

def scan_tree(root: Path, recursive: bool, filt: FileFilter) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files below `root` that `filt` wants, with their stat (file symlinks followed).

    Never follows directory symlinks (no loops), prunes ignored and excluded directories, and
    skips what cannot be read with one warning per directory. Never raises: a missing root is
    a warning and an empty scan.
    """
    top = os.path.abspath(root)  # exclude_dirs are absolute
    if not filt.wants_dir(Path(top)):
        return
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            # A subfolder deleted mid-scan is routine; a missing top or unreadable folder is not.
            vanished = isinstance(e, (FileNotFoundError, NotADirectoryError)) and directory != top
            (log.debug if vanished else log.warning)("cannot scan %s: %s", directory,
                                                     e.strerror or e)
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                # Parent components were checked on the way down: only this name can be ignored.
                if recursive and filt._dir_name_wanted(entry.name) and (
                    not filt._exclude or not _under(entry.path, filt._exclude)
                ):
                    stack.append(entry.path)
                continue
            if not filt._name_wanted(entry.name):
                continue
            try:
                st = entry.stat()  # follows a symlink to a file
            except OSError as e:
                log.debug("skipping %s: %s", entry.path, e.strerror or e)
                continue
            if not stat.S_ISREG(st.st_mode):
                log.debug("skipping %s: not a regular file", entry.path)
                continue
            yield Path(entry.path), st


def count_dirs(root: Path, recursive: bool, limit: int) -> int:
    """Directories an inotify watch of `root` needs (root included), counting no further than limit."""
    count = 1
    if not recursive or count >= limit:
        return min(count, limit)
    stack = [os.fspath(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if not entry.is_dir(follow_symlinks=False):
                            continue
                    except OSError:
                        continue
                    count += 1
                    if count >= limit:
                        return limit
                    stack.append(entry.path)
        except OSError:
            continue
    return count


# -- observing -------------------------------------------------------------------------------------

class _OverflowHandler(logging.Handler):
    def __init__(self, callback: Callable[[], None], thread_ident: int | None) -> None:
        super().__init__(logging.WARNING)
        self._callback = callback
        self._thread_ident = thread_ident

    def emit(self, record: logging.LogRecord) -> None:
        # record.thread is None when logging.logThreads is off: then every overflow counts.
        if self._thread_ident is not None and record.thread not in (None, self._thread_ident):
            return
        try:
            if "overflow" not in record.getMessage().lower():
                return
            self._callback()
        except Exception:
            log.exception("the inotify overflow callback failed")


_hook_lock = threading.Lock()
_hooks_installed = 0
_saved_level: int | None = None


def _install_hook(callback: Callable[[], None], thread_ident: int | None) -> Callable[[], None]:
    global _hooks_installed, _saved_level
    target = logging.getLogger(_OVERFLOW_LOGGER)
    handler = _OverflowHandler(callback, thread_ident)
    with _hook_lock:
        # A logging config with disable_existing_loggers, or a root level above WARNING,
        # would otherwise swallow the only sign of an overflow.
        target.disabled = False
        if _hooks_installed == 0 and target.getEffectiveLevel() > logging.WARNING:
            _saved_level = target.level
            target.setLevel(logging.WARNING)
        _hooks_installed += 1
        target.addHandler(handler)
    done = False

    def uninstall() -> None:
        global _hooks_installed, _saved_level
        nonlocal done
        with _hook_lock:
            if done:
                return
            done = True
            target.removeHandler(handler)
            _hooks_installed -= 1
            if _hooks_installed == 0 and _saved_level is not None:
                target.setLevel(_saved_level)
                _saved_level = None

    return uninstall


def install_overflow_hook(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on every inotify queue overflow; returns a function that uninstalls it.

    watchdog 7.1 only logs the overflow ("Inotify queue overflowed; filesystem events were
    lost" on logger watchdog.observers.inotify_c) and delivers no event, so we hook the log.
    """
    return _install_hook(callback, None)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        super().__init__()
        self._w = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        # An exception escaping here would kill watchdog's observer thread without a word.
        try:
            self._dispatch(event)
        except Exception:
            log.exception("error handling %s for %s", type(event).__name__, event.src_path)

    def _dispatch(self, event: FileSystemEvent) -> None:
        w = self._w
        if isinstance(event, FileMovedEvent):
            if event.dest_path:
                w.on_path(Path(os.fsdecode(event.dest_path)), False)
        elif isinstance(event, FileClosedEvent):
            w.on_path(Path(os.fsdecode(event.src_path)), True)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileAttribEvent)):
            # Attrib: a chmod can make an unreadable file readable, worth another look.
            w.on_path(Path(os.fsdecode(event.src_path)), False)
        elif isinstance(event, (DirCreatedEvent, DirMovedEvent)) and w.recursive and w.on_dir:
            target = event.dest_path if isinstance(event, DirMovedEvent) else event.src_path
            if target:
                w.on_dir(Path(os.fsdecode(target)))


class FolderWatcher:
    """One watchdog observer (inotify or polling) for one folder, reporting paths, not decisions.

    Callbacks run on the observer thread; exceptions in them are logged, never fatal.
    With inotify, an overflow of this observer's queue calls `on_overflow`.
    """

    def __init__(
        self,
        root: Path,
        *,
        recursive: bool,
        kind: str,
        poll_interval: float,
        on_path: Callable[[Path, bool], None],
        on_overflow: Callable[[], None],
        on_dir: Callable[[Path], None] | None = None,
    ) -> None:
        if kind not in OBSERVER_KINDS:
            raise ValueError(f"observer kind must be inotify or polling, not {kind!r}")
        self.root = Path(root)
        self.recursive = recursive
        self.kind = kind
        self.poll_interval = poll_interval
        self.on_path = on_path
        self.on_overflow = on_overflow
        self.on_dir = on_dir
        self._observer: BaseObserver | None = None
        self._stopper: threading.Thread | None = None
        self._uninstall: Callable[[], None] | None = None

    def start(self) -> None:
        """Start watching; raises OSError (with a clear message) if the folder cannot be watched."""
        if self._observer is not None:
            raise RuntimeError(f"the watcher of {self.root} was already started")
        if not self.root.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(self.root))
        try:
            observer = (Observer() if self.kind == "inotify"
                        else PollingObserver(timeout=self.poll_interval))
        except OSError as e:
            raise _friendly(e, self.root) from e
        self._observer = observer
        if self.kind == "inotify":
            # InotifyObserver reads its own inotify fd on a thread of its own, so an overflow
            # logged on that thread is this folder's. Private attribute: without it, every
            # overflow counts for every folder (a spare rescan, nothing lost).
            fd_thread = getattr(observer, "_inotify_fd", None)
            ident = fd_thread.ident if isinstance(fd_thread, threading.Thread) else None
            self._uninstall = _install_hook(self._overflowed, ident)
        try:
            observer.schedule(_Handler(self), str(self.root), recursive=self.recursive,
                              event_filter=_EVENT_FILTER)
            observer.start()
        except BaseException as e:
            self._stop_observer()
            if self._uninstall:
                self._uninstall()
            if isinstance(e, OSError):
                raise _friendly(e, self.root) from e
            raise
        log.debug("%s observer started on %s", self.kind, self.root)

    def stop(self) -> None:
        """Ask the observer to stop; returns at once (a polling snapshot of a NAS can take long)."""
        if self._uninstall:
            self._uninstall()
        if self._observer is None or self._stopper is not None:
            return
        self._stopper = threading.Thread(
            target=self._stop_observer, name=f"runwatchd-stop-{self.root.name}", daemon=True)
        self._stopper.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in (self._stopper, self._observer):
            if thread is not None and thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def is_alive(self) -> bool:
        """True while the observer and every emitter thread run (an emitter stops by itself
        when the watched folder is deleted or unmounted)."""
        obs = self._observer
        if obs is None or self._stopper is not None or not obs.is_alive():
            return False
        return all(e.is_alive() for e in list(obs.emitters))

    def _stop_observer(self) -> None:
        obs = self._observer
        if obs is None:
            return
        try:
            obs.stop()
        except Exception:
            log.exception("stopping the observer of %s failed", self.root)

    def _overflowed(self) -> None:
        log.warning("inotify queue overflowed while watching %s: events were lost", self.root)
        self.on_overflow()


def _friendly(e: OSError, root: Path) -> OSError:
    if e.errno == errno.ENOSPC:
        limit = inotify_watch_limit()
        return OSError(errno.ENOSPC, f"the inotify watch limit (fs.inotify.max_user_watches={limit})"
                       " is reached", str(root))
    if e.errno == errno.EMFILE:
        return OSError(errno.EMFILE, "the inotify instance limit (fs.inotify.max_user_instances)"
                       " is reached", str(root))
    return OSError(e.errno, e.strerror or str(e), str(root))
