"""Health and status: what systemd, `runwatchd status` and metrics are told about the daemon.

healthy() gates systemd's WATCHDOG=1 pings (observers alive, workers making progress); every
2 s the main loop's heartbeat refreshes status.json, systemd's STATUS= line and the metrics
gauges. Health reads the daemon only through the Snapshot its `snapshot` callable returns.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runwatchd import fsutil
from runwatchd.lifecycle.states import Outcome
from runwatchd.service.credits import CreditWatch
from runwatchd.service.metrics import Metrics
from runwatchd.service.notify import Notifier, WatchdogPinger
from runwatchd.service.status import STATUS_FILE
from runwatchd.store.base import HolderInfo

log = logging.getLogger(__name__)

# Workers busy without finishing anything for this long are stuck (the watchdog restarts them).
STALLED_AFTER = 900.0
# How often the heartbeat rewrites status.json and the STATUS= line.
STATUS_INTERVAL = 2.0


@dataclass(frozen=True)
class FolderView:
    """One watched folder, as reported."""

    root: Path
    kind: str  # its observer: inotify, polling, none
    state: str  # watching, unavailable, idle
    healthy: bool  # its observer lives (or it has a reason not to)


@dataclass(frozen=True)
class Snapshot:
    """What the daemon is doing now."""

    folders: tuple[FolderView, ...]
    in_flight: frozenset[Path]  # files being worked on
    waiting: int  # files settling or waiting for a worker
    tasks: int  # generations followed
    outcomes: Mapping[str, int]  # how files ended so far
    paused: str | None  # why all work is paused (a rejected key), or None
    follower_alive: bool  # the task follower's threads run
    last_progress: float  # when (daemon clock) work last moved on
    not_taken: Mapping[str, int] = field(default_factory=dict)  # files seen, not taken, by why
    uploads: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # (sent, size) by path
    store_outage: str | None = None  # the store has been unreachable past [store] outage_seconds


class Health:
    """The daemon's health check, watchdog pings and status reports.

    `watching`: observers are part of health (run; a scan watches nothing). `journal_counts`
    feeds the files-by-state gauge, `holders` the gauge of the processes on the store. `clock`
    is the daemon's (for Snapshot.last_progress); `beat_clock` paces the status writes."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        *,
        state_dir: Path,
        watching: bool,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        journal_counts: Callable[[], Mapping[str, int]] = dict,
        holders: Callable[[], Sequence[HolderInfo]] = list,
        credits: CreditWatch | None = None,
        clock: Callable[[], float] = time.monotonic,
        beat_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._state_dir = state_dir
        self._watching = watching
        self._notifier = notifier
        self._metrics = metrics
        self._journal_counts = journal_counts
        self._holders = holders
        self._credits = credits
        self._clock = clock
        self._beat_clock = beat_clock
        self._pinger = WatchdogPinger(notifier, self.healthy) if notifier is not None else None
        self._armed = False  # READY=1 sent: systemd's watchdog runs
        self._writes_status = False
        self._last_status_write = 0.0
        self._last_status_line = ""

    def own_status_file(self) -> None:
        """This process owns the state directory: status.json is its to write (a `scan` beside
        the daemon leaves it alone, so `runwatchd status` describes the daemon)."""
        self._writes_status = True

    # -- health ----------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Observers alive, workers making progress (or nothing to do), the store reachable (or
        not for long)."""
        s = self._snapshot()
        if s.store_outage is not None:
            return False
        if self._watching and not all(f.healthy for f in s.folders):
            return False
        if not s.follower_alive:
            return False
        stalled = bool(s.in_flight) and self._clock() - s.last_progress > STALLED_AFTER
        return not stalled

    def keepalive(self) -> None:
        """WATCHDOG=1 from inside a long scan (100k files on a NAS take longer than WatchdogSec).
        Not before READY=1: systemd arms the watchdog at READY=1, and an early ping would arm it
        during a catch-up scan that TimeoutStartSec already covers."""
        if self._pinger is not None and self._armed:
            self._pinger.tick()

    def next_ping_in(self) -> float | None:
        """How long the main loop may sleep for the watchdog's sake; None: as long as it likes."""
        pinger = self._pinger
        if pinger is None or not pinger.interval or (ping := pinger.next_due()) is None:
            return None
        # Floor: while unhealthy the ping stays overdue, and that must not become a busy loop;
        # a quarter interval keeps a short WatchdogSec on time once healthy again.
        return max(min(0.25, pinger.interval / 4), ping)

    # -- systemd ---------------------------------------------------------------------------------

    def ready(self) -> None:
        """READY=1 (start-up done, or a reload ended) with the status line."""
        if self._notifier is not None:
            self._notifier.ready(self.status_line())
        self._armed = True

    def reloading(self) -> None:
        if self._notifier is not None:
            self._notifier.reloading()

    def stopping(self) -> None:
        if self._notifier is not None:
            self._notifier.stopping()
        if self._credits is not None:
            self._credits.stop()

    def heartbeat(self) -> None:
        """Every turn of the main loop: the watchdog ping, and every 2 s the status reports."""
        if self._pinger is not None:
            self._pinger.tick()  # WATCHDOG=1 only while observers live and workers progress
        if self._credits is not None:
            self._credits.poke()  # a balance check when one is due, on a thread of its own
        now = self._beat_clock()
        if now - self._last_status_write < STATUS_INTERVAL:
            return
        self._last_status_write = now
        s = self._snapshot()
        self._write_status(s)
        line = _status_line(s)
        if self._notifier is not None and line != self._last_status_line:
            self._last_status_line = line
            self._notifier.status(line)
        if self._metrics is not None:
            self._metrics.set_queue_depth(s.waiting)
            self._metrics.set_in_flight(uploads=len(s.uploads), tasks=s.tasks)
            self._metrics.set_files_by_state(self._journal_counts())
            holders = self._holders()
            alive = sum(1 for h in holders if h.alive)
            self._metrics.set_holders(alive=alive, dead=len(holders) - alive)

    # -- status ----------------------------------------------------------------------------------

    def status_line(self) -> str:
        """systemd's STATUS= line: what the daemon is doing, in one line."""
        return _status_line(self._snapshot())

    def write_final_status(self) -> None:
        """status.json at shutdown: not running any more."""
        self._write_status(self._snapshot(), final=True)

    def _write_status(self, s: Snapshot, final: bool = False) -> None:
        if not self._writes_status:
            return
        status = {
            "pid": os.getpid(), "running": not final, "updated_at": time.time(),
            "paused": s.paused, "in_flight": sorted(str(p) for p in s.in_flight),
            "waiting": s.waiting, "tasks_followed": s.tasks, "outcomes": dict(s.outcomes),
            "not_taken": dict(s.not_taken),
            "credits": self._credits.report() if self._credits is not None else None,
            "uploads": [{"path": p, "bytes_sent": sent, "bytes_total": total,
                         "percent": round(100.0 * sent / total, 1) if total else 0.0}
                        for p, (sent, total) in sorted(s.uploads.items())],
            "folders": [{"path": str(f.root), "observer": f.kind, "state": f.state}
                        for f in s.folders],
        }
        try:
            fsutil.atomic_write_bytes(self._state_dir / STATUS_FILE,
                                      json.dumps(status, indent=2).encode())
        except OSError as e:
            log.debug("cannot write status file: %s", e)


def _status_line(s: Snapshot) -> str:
    if s.paused:
        return f"PAUSED: {s.paused}"
    if s.store_outage:
        return f"WAITING: {s.store_outage}"
    o = s.outcomes
    text = (f"{len(s.in_flight)} uploading, {s.waiting} waiting, {s.tasks} tasks; "
            f"{o.get(Outcome.UPLOADED, 0)} uploaded, {o.get(Outcome.FAILED, 0)} failed")
    if (skipped := sum(s.not_taken.values())):
        text += f", {skipped} not taken"
    away = [f for f in s.folders if f.state == "unavailable"]
    if away:
        text += f"; {len(away)} folder(s) unavailable: {', '.join(str(f.root) for f in away)}"
    return text
