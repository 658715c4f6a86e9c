"""`runwatchd status`: what the daemon knows, read while it runs.

The daemon rewrites `status.json` in its state directory every two seconds (atomically); the
store is read through its read-only view (store.open_view), which never blocks the daemon or sees
half a write.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from runwatchd.store import open_view

STATUS_FILE = "status.json"
# The daemon rewrites its status every 2 s; older than this, it is not running (or hangs).
STALE_AFTER = 30.0


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process (the systemd service user): it exists
    return True


def collect_status(state_dir: Path) -> dict[str, Any]:
    status: dict[str, Any] = {"state_dir": str(state_dir), "running": False, "daemon": None,
                              "files": {}, "recent_failures": []}
    live = state_dir / STATUS_FILE
    if live.exists():
        try:
            status["daemon"] = json.loads(live.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            status["daemon"] = None
    daemon = status["daemon"]
    if isinstance(daemon, dict):
        age = time.time() - daemon.get("updated_at", 0)
        status["running"] = bool(daemon.get("running") and age < STALE_AFTER
                                 and _alive(daemon.get("pid")))
    view = open_view(state_dir)
    try:
        status["files"] = view.counts()
        status["recent_failures"] = [
            {"path": r.path, "state": r.state, "error": r.error, "at": r.updated_at}
            for r in view.recent_errors(10)
        ]
    finally:
        view.close()
    return status


def render_status(state_dir: Path, *, as_json: bool = False) -> str:
    status = collect_status(state_dir)
    if as_json:
        return json.dumps(status, indent=2)
    lines = [f"state directory: {state_dir}"]
    daemon = status["daemon"]
    if daemon is None:
        lines.append("daemon: no status written yet (never started here?)")
    else:
        age = time.time() - daemon.get("updated_at", 0)
        running = status["running"]
        state = "running" if running else "not running"
        if daemon.get("running") and not running:
            state += " (it did not shut down cleanly, or hangs)"
        lines.append(f"daemon: {state} (pid {daemon.get('pid')}, status {age:.0f} s old)")
        if daemon.get("paused"):
            lines.append(f"PAUSED: {daemon['paused']}")
        lines.append(f"in flight: {len(daemon.get('in_flight', []))}, waiting to settle: "
                     f"{daemon.get('waiting', 0)}, "
                     f"tasks followed: {daemon.get('tasks_followed', 0)}")
        for path in daemon.get("in_flight", []):
            lines.append(f"  uploading {path}")
        done = daemon.get("outcomes") or {}
        if done:
            lines.append(("this run: " if running else "last run: ")
                         + ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        skipped = daemon.get("not_taken") or {}
        if skipped:
            lines.append("not taken (seen, left alone): "
                         + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(skipped.items())))
        for folder in daemon.get("folders", []):
            lines.append(f"  folder {folder['path']}: {folder['state']} ({folder['observer']})")
    files = status["files"]
    lines.append("files by state: " + (", ".join(f"{k} {v}" for k, v in files.items()) or "none"))
    if status["recent_failures"]:
        lines.append("recent problems:")
        for f in status["recent_failures"]:
            lines.append(f"  {f['path']}: {f['state']}: {f['error']}")
    return "\n".join(lines)
