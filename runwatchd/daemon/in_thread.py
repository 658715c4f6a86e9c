"""A Daemon run in a thread of its own: the demo and the tests run one beside their own work.

No signal handlers are involved (the Daemon never installs any; the CLI does), so this works on
any thread.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from runwatchd.daemon.core import Daemon


class DaemonThread:
    """Runs `daemon.run()` in a thread; start() waits for start-up, stop() asks it to stop and
    joins it. Usable as a context manager (stopped on exit)."""

    def __init__(self, daemon: Daemon, *, name: str = "runwatchd-daemon",
                 background: bool = False) -> None:
        self.daemon = daemon
        self.exit_code: int | None = None
        self.error: BaseException | None = None  # what run() raised, if anything
        # `background`: the interpreter may exit without joining it (the demo's safety net).
        self._thread = threading.Thread(target=self._run, name=name, daemon=background)

    def _run(self) -> None:
        try:
            self.exit_code = self.daemon.run()
        except BaseException as e:  # noqa: BLE001 - kept for the caller, who reports it
            self.error = e

    def start(self, timeout: float = 10.0) -> Daemon:
        """Start the thread and wait until the daemon has started (or its run() ended early:
        then RuntimeError, from what it raised)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.daemon.started.wait(0.01) and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError("the daemon did not start in time")
        if not self.daemon.started.is_set():
            raise RuntimeError(f"the daemon ended during start-up (exit code {self.exit_code})"
                               ) from self.error
        return self.daemon

    def stop(self, timeout: float = 20.0) -> int | None:
        """Ask the daemon to stop and wait up to `timeout` for it; its exit code (None while it
        still runs or when run() raised)."""
        self.daemon.request_stop()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return self.exit_code

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
