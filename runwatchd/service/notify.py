"""The sd_notify protocol: tell systemd when the daemon is ready, what it does, and that it lives.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket). A hand-written sender keeps
libsystemd out of the dependencies. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op,
so the daemon calls these methods unconditionally.

WATCHDOG=1 is a promise that the daemon works, not merely that a thread still runs: the daemon
drives a :class:`WatchdogPinger` from its main loop with a ``healthy`` check (observers alive and
workers making progress), so a wedged daemon stops pinging and systemd restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

__all__ = ["Notifier", "WatchdogPinger"]


def _socket_address(value: str) -> str | None:
    """Map ``$NOTIFY_SOCKET`` to an address for ``sendto``; None if unusable (e.g. vsock:)."""
    if value.startswith("@"):
        # Linux abstract namespace: a leading NUL byte instead of the "@" systemd writes.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify messages; silent and harmless when not run by systemd."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._failed_once = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``WATCHDOG_PID``; changes nothing in env."""
        raw = env.get("NOTIFY_SOCKET", "")
        address = _socket_address(raw) if raw else None
        if raw and address is None:
            log.debug("NOTIFY_SOCKET=%r is not a path or abstract socket; notifications off", raw)
        return cls(address, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        """True when a notification socket is known (the daemon runs under Type=notify)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when not asked for."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one datagram; True if it was sent. Never raises."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as e:
            # A missing notify socket must never take the daemon down; systemd will notice on
            # its own (start timeout, watchdog). Once is enough in the log.
            if not self._failed_once:
                self._failed_once = True
                log.debug("sd_notify to %r failed: %s", self._address, e)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up (config, key check, observers, catch-up scan) is complete."""
        if status is None:
            return self.send("READY=1")
        return self.send("READY=1", "STATUS=" + _one_line(status))

    def status(self, text: str) -> bool:
        """STATUS=: one line shown by ``systemctl status``."""
        return self.send("STATUS=" + _one_line(text))

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: shutdown has begun (draining in-flight work)."""
        if status is None:
            return self.send("STOPPING=1")
        return self.send("STOPPING=1", "STATUS=" + _one_line(status))

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC as systemd asks; call ready() when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the daemon is alive and working. Prefer :class:`WatchdogPinger`."""
        return self.send("WATCHDOG=1")


def _one_line(text: str) -> str:
    # A newline would end the STATUS= field and start a bogus one.
    return " ".join(text.splitlines())


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process systemd expects pings from; a child that inherited the
    # environment (a hook script, a re-exec) must not take the watchdog over.
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.debug("ignoring WATCHDOG_USEC=%r: not an integer", raw)
        return None
    return usec if usec > 0 else None


class WatchdogPinger:
    """Sends WATCHDOG=1 from the main loop at most once per interval, and only while healthy.

    ``tick()`` is cheap: call it on every turn of the daemon's loop. When ``healthy()`` turns
    false (an observer thread died, workers stopped progressing) pinging stops, one warning is
    logged with the reason systemd will soon act on, and systemd's watchdog restarts the daemon.
    """

    def __init__(
        self,
        notifier: Notifier,
        healthy: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        interval: float | None = None,
    ) -> None:
        self._notifier = notifier
        self._healthy = healthy
        self._clock = clock
        self.interval = interval if interval is not None else notifier.watchdog_interval()
        self._last: float | None = None
        self._unhealthy_logged = False

    @property
    def enabled(self) -> bool:
        """True when systemd asked for pings and a socket is there to receive them."""
        return self.interval is not None and self._notifier.enabled

    def next_due(self) -> float | None:
        """Seconds until the next ping is due (0 if overdue); None when pinging is off."""
        if not self.enabled or self.interval is None:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - self._clock())

    def tick(self) -> bool:
        """Ping if the interval has elapsed and the daemon is healthy; True if a ping was sent."""
        if not self.enabled or self.interval is None:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        if not self._check():
            return False
        self._last = now
        return self._notifier.watchdog()

    def _check(self) -> bool:
        error: Exception | None = None
        try:
            ok = bool(self._healthy())
        except Exception as e:  # a buggy check must read as "unhealthy", not kill the loop
            ok, error = False, e
        if ok:
            if self._unhealthy_logged:
                log.info("healthy again; resuming systemd watchdog pings")
            self._unhealthy_logged = False
        elif not self._unhealthy_logged:
            self._unhealthy_logged = True
            log.warning(
                "unhealthy (%s); withholding the systemd watchdog ping, so systemd will restart "
                "the daemon",
                f"health check raised {error!r}" if error else "observer stopped or workers stuck",
            )
        return ok
