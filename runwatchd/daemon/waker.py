"""Wake the main loop from anywhere, a signal handler included, without taking a lock.

threading.Event.set() takes the event's lock: called from a signal handler while the main thread
is inside Event.wait() (which holds that very lock for a moment), it blocks for ever, and a burst
of signals nests handlers until RecursionError (issue 13, item 1). A pipe needs no lock: `wake()`
is one non-blocking os.write, safe in a signal handler and from any thread; `wait()` is a select
on the pipe's other end, then a drain.

close() must never let a late wake() write into a descriptor number the process has since
reused for a file: wake() writes only while it holds a lock it merely tries to take, and close()
takes it for good. A wake() that finds the lock taken is dropped, which costs nothing: whoever
holds it is waking the loop too, or closing it.
"""

from __future__ import annotations

import os
import select
import threading


class Waker:
    """A self-pipe: wake() from anywhere, wait(timeout) on the main thread."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._closed = False

    def wake(self) -> None:
        """Make the next (or current) wait() return; async-signal-safe (it never waits)."""
        if not self._lock.acquire(blocking=False):
            return  # another wake() is writing (the loop wakes anyway), or close() runs
        try:
            if not self._closed:
                os.write(self._write, b"\0")
        except OSError:
            pass  # the pipe is full: a wake-up is pending anyway
        finally:
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """Sleep until wake() or `timeout` seconds; True when woken. Drains every pending
        wake-up, so a burst of them costs one loop turn."""
        # A signal during select() runs its handler, then select() goes on (PEP 475): the
        # handler's wake() is what ends the wait.
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            while os.read(self._read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        return True

    def fileno(self) -> int:
        """The read end, for signal.set_wakeup_fd-style use or a selector."""
        return self._read

    def close(self) -> None:
        """Close the pipe; later wake() calls do nothing. Not from a signal handler."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                os.close(fd)
