"""Health and status: what systemd, `runwatchd status` and metrics are told about the daemon.

healthy() gates systemd's WATCHDOG=1 pings (observers alive, workers making progress); every
2 s the main loop's heartbeat refreshes status.json, systemd's STATUS= line and the metrics
gauges. Mixed into daemon.Daemon.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING

from runwatchd import fsutil
from runwatchd.daemon.outcome_book import FAILED
from runwatchd.service.status import STATUS_FILE

if TYPE_CHECKING:
    from runwatchd.daemon.core import Daemon

log = logging.getLogger(__name__)


class HealthMixin:
    """The daemon's health check, watchdog pings and status reports."""

    def healthy(self: Daemon) -> bool:
        """Observers alive and workers making progress (or nothing to do)."""
        if self.mode == "run" and not all(f.healthy() for f in self.folders):
            return False
        if not self.follower.is_alive():
            return False
        busy = bool(self._in_flight)
        stalled = busy and self.clock() - self._last_progress > 900
        return not stalled

    def _keepalive(self: Daemon) -> None:
        """WATCHDOG=1 from inside a long scan (100k files on a NAS take longer than WatchdogSec).
        Not before READY=1: systemd arms the watchdog at READY=1, and an early ping would arm it
        during a catch-up scan that TimeoutStartSec already covers."""
        if self._pinger is not None and self._started:
            self._pinger.tick()

    def _heartbeat(self: Daemon) -> None:
        if self._pinger is not None:
            self._pinger.tick()  # WATCHDOG=1 only while observers live and workers progress
        now = time.monotonic()
        if now - self._last_status_write >= 2.0:
            self._last_status_write = now
            self._close_retired_clients()
            self._write_status()
            line = self._status_line()
            if self.notifier and line != self._last_status_line:
                self._last_status_line = line
                self.notifier.status(line)
            if self.metrics:
                self.metrics.set_queue_depth(len(self.table) + len(self._ready))
                self.metrics.set_in_flight(len(self._in_flight) + self.follower.pending())
                self.metrics.set_files_by_state(self.journal.counts())

    def _status_line(self: Daemon) -> str:
        o = self.outcomes
        text = (f"{len(self._in_flight)} uploading, {len(self.table) + len(self._ready)} waiting, "
                f"{self.follower.pending()} tasks; {o['uploaded']} uploaded, {o[FAILED]} failed")
        away = [f for f in self.folders if f.state == "unavailable"]
        if away:
            text += f"; {len(away)} folder(s) unavailable: {', '.join(str(f.root) for f in away)}"
        return f"PAUSED: {self._paused}" if self._paused else text

    def _write_status(self: Daemon, final: bool = False) -> None:
        if not self._owner:
            return  # a `scan` beside the daemon: `runwatchd status` describes the daemon
        status = {
            "pid": os.getpid(), "running": not final, "updated_at": time.time(),
            "paused": self._paused, "in_flight": sorted(str(p) for p in self._in_flight),
            "waiting": len(self.table) + len(self._ready), "tasks_followed": self.follower.pending(),
            "outcomes": dict(self.outcomes),
            "folders": [{"path": str(f.root), "observer": f.kind, "state": f.state}
                        for f in self.folders],
        }
        try:
            fsutil.atomic_write_bytes(self.state_dir / STATUS_FILE,
                                      json.dumps(status, indent=2).encode())
        except OSError as e:
            log.debug("cannot write status file: %s", e)
