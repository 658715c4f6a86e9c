"""Wake the main loop from anywhere, a signal handler included, without taking a lock.

threading.Event.set() takes the event's lock: called from a signal handler while the main thread
is inside Event.wait() (which holds that very lock for a moment), it blocks for ever, and a burst
of signals nests handlers until RecursionError (issue 13, item 1). A pipe needs no lock: `wake()`
is one non-blocking os.write, safe in a signal handler and from any thread; `wait()` is a select
on the pipe's other end, then a drain.
"""

from __future__ import annotations

import os
import select


class Waker:
    """A self-pipe: wake() from anywhere, wait(timeout) on the main thread."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        """Make the next (or current) wait() return; async-signal-safe."""
        try:
            os.write(self._write, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed at shutdown

    def wait(self, timeout: float) -> bool:
        """Sleep until wake() or `timeout` seconds; True when woken. Drains every pending
        wake-up, so a burst of them costs one loop turn."""
        try:
            ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        except InterruptedError:  # a signal arrived: its handler has called wake() (or not)
            ready = [self._read]
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
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
