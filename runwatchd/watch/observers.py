"""Watch: how to hear about a folder's files, with a watchdog observer (inotify or polling).

The watcher is deliberately dumb: it turns watchdog events into `on_path(path, closed)` and
`on_dir(path)` calls and leaves every decision to `scan.FileFilter` and the candidate table.
watchdog 7.1 pitfalls handled here:
- an exception escaping a handler kills the observer thread silently: the handler catches all;
- an inotify queue overflow is only logged (no event): `install_overflow_hook` listens to that log;
- PatternMatchingEventHandler drops rsync's final rename when dotfiles are ignored: we report
  every path, a move by its destination, and `scan.FileFilter` matches basenames itself.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
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

from runwatchd.watch import OVERFLOW_LOGGER
from runwatchd.watch.mounts import OBSERVER_KINDS, inotify_watch_limit

log = logging.getLogger(__name__)

# watchdog 7.1 warns (RuntimeWarning) when a directory created during its recursive walk gets
# its callback registered twice; the callback is simply replaced and no event is lost, so the
# warning is only noise on the daemon's stderr.
warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)


# Only the event kinds we act on: the daemon's own reads of every file it uploads would
# otherwise add IN_OPEN/IN_CLOSE_NOWRITE to the inotify queue and make overflows likelier.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileMovedEvent,
    DirCreatedEvent, DirMovedEvent,
]


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
    target = logging.getLogger(OVERFLOW_LOGGER)
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
