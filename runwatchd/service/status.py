"""`runwatchd status`: what the daemon knows, read while it runs.

The daemon rewrites `status.json` in its state directory every two seconds (atomically); the
store is read through its read-only view (store.open_view), which never blocks the daemon or sees
half a write. The exit code is LSB's: 0 while a process holds the store (the daemon takes its
ownership at start-up), 3 when none does. `running` in --json keeps its stricter sense: a daemon
that also refreshed status.json within 30 s (the container health check reads it, so a wedged
daemon that still holds the store turns unhealthy).

The cluster: every process that works on the store (the daemons of every node of a shared
PostgreSQL store, a `scan` beside a daemon) and beats its heart is listed from the store itself,
so any node (or an admin's shell) sees them all: node, pid, version, last heartbeat as an age,
files in flight, alive or not. The age is the asker's clock minus the heartbeat's time, which
is the store's clock (PostgreSQL's server): a skewed asker sees skewed ages, never negative
ones; "alive" is the store's own verdict and needs no clock of the asker.

Which state directory: the one the service would use. The units run `run -c /etc/runwatchd/
NAME.toml` with StateDirectory=runwatchd[/NAME]; an admin's shell has no $STATE_DIRECTORY, so
`status` with such a config looks where the unit's daemon keeps its store, not in ~/.local.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from runwatchd import fsutil
from runwatchd.config.load import Config
from runwatchd.config.sources import resolve_state_dir, resolve_store_url
from runwatchd.service.sizes import human_size, iso_time
from runwatchd.store import open_view
from runwatchd.store.open import describe as describe_store
from runwatchd.store.open import is_postgres

STATUS_FILE = "status.json"
# The daemon rewrites its status every 2 s; older than this, it is not running (or hangs).
STALE_AFTER = 30.0
# LSB init-script `status` exit codes.
EXIT_RUNNING, EXIT_NOT_RUNNING = 0, 3
# Where the units read their configs, and where StateDirectory= puts their state.
UNIT_CONFIG_DIR = Path("/etc/runwatchd")
UNIT_STATE_DIR = Path("/var/lib/runwatchd")
# How often `status --watch` redraws (the daemon rewrites its status this often).
WATCH_INTERVAL = 2.0


def unit_state_dir(config: Path | None, *, etc: Path | None = None,
                   lib: Path | None = None) -> Path | None:
    """The state directory systemd gives the unit that reads `config`: runwatchd.service reads
    /etc/runwatchd/config.toml into /var/lib/runwatchd, runwatchd@NAME reads NAME.toml into
    /var/lib/runwatchd/NAME. None for any other config."""
    etc, lib = etc or UNIT_CONFIG_DIR, lib or UNIT_STATE_DIR
    if config is None or config.suffix != ".toml" or config.parent != etc:
        return None
    return lib if config.name == "config.toml" else lib / config.stem


def status_state_dir(cfg: Config, env: Mapping[str, str] = os.environ, *,
                     etc: Path | None = None, lib: Path | None = None) -> Path:
    """The state directory the daemon of `cfg` uses: [runway] state_dir, else
    $STATE_DIRECTORY, else the unit's for a service config, else the XDG one."""
    if cfg.runway.state_dir is None and not env.get("STATE_DIRECTORY"):
        unit = unit_state_dir(cfg.source and Path(os.path.abspath(cfg.source)), etc=etc, lib=lib)
        if unit is not None:
            return unit
    return resolve_state_dir(cfg, env)


def startup_line(cfg: Config, api_url: str, state_dir: Path) -> str:
    """The daemon's first line: which runwatchd, reading what, talking to whom, keeping its
    state where (what one needs to know first when two installs or configs get mixed up)."""
    from runwatchd import __version__

    config = str(cfg.source) if cfg.source is not None else "none (command line only)"
    return (f"runwatchd {__version__} ◆ config {config} ◆ API {api_url} ◆ state dir "
            f"{state_dir} ◆ store {describe_store(state_dir, resolve_store_url(cfg))}")


def collect_status(state_dir: Path, store_url: str | None = None, *,
                   node: str | None = None) -> dict[str, Any]:
    """What `status` reports, read from the daemon's status file and its store (SQLite in
    `state_dir`, or the store at `store_url`). `node`: whose daemon the owner is in a shared
    store (the asker's, `[store] node`; default the host name)."""
    # A shared store has one owner per node: say whose daemon "running" is about.
    shared_node = (node or socket.gethostname()) if is_postgres(store_url) else None
    status: dict[str, Any] = {"state_dir": str(state_dir),
                              "store": describe_store(state_dir, store_url),
                              "node": shared_node, "running": False, "owner": None, "daemon": None,
                              "holders": [], "files": {}, "recent_failures": []}
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
                                 and fsutil.pid_exists(daemon.get("pid")))
    view = open_view(state_dir, store_url, node=node)
    try:
        owner = view.owner()
        if owner is not None:
            status["owner"] = {"pid": owner.pid, "node": owner.node, "since": owner.since}
        now = time.time()
        status["holders"] = [
            {"node": h.node, "pid": h.pid, "version": h.version, "holder": h.holder,
             "started_at": h.started_at, "heartbeat_at": h.heartbeat_at,
             "heartbeat_age": (None if h.heartbeat_at is None
                               else round(max(0.0, now - h.heartbeat_at), 1)),
             "in_flight": h.in_flight, "alive": h.alive}
            for h in view.holders()
        ]
        status["files"] = view.counts()
        status["recent_failures"] = [
            {"path": r.path, "state": r.state, "error": r.error, "at": r.updated_at}
            for r in view.recent_errors(10)
        ]
    finally:
        view.close()
    return status


def render_status(state_dir: Path, store_url: str | None = None, *, node: str | None = None,
                  as_json: bool = False) -> str:
    return render(collect_status(state_dir, store_url, node=node), as_json=as_json)


def exit_code(status: Mapping[str, Any]) -> int:
    """LSB: 0 when a daemon holds the store (or, where the lock cannot be read, answers), 3
    when none does."""
    return EXIT_RUNNING if status["owner"] or status["running"] else EXIT_NOT_RUNNING


def render(status: Mapping[str, Any], *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(_for_json(status), indent=2)
    lines = [f"state directory: {status['state_dir']}", f"store: {status['store']}"]
    daemon, owner, running = status["daemon"], status["owner"], status["running"]
    if owner is not None:
        lines.append(f"daemon: running (pid {owner['pid']} on {owner['node']} holds the store)")
    elif running:
        lines.append(f"daemon: running (pid {daemon.get('pid')})")
    elif status.get("node"):
        lines.append(f"daemon: not running on node {status['node']} (no process of this node "
                     "holds the store)")
    else:
        lines.append("daemon: not running (no process holds the store)")
    if daemon is None:
        lines.append("status: none written yet (never started here?)")
    else:
        age = time.time() - daemon.get("updated_at", 0)
        note = ""
        if daemon.get("running") and owner is None and not running:
            note = "; it did not shut down cleanly"
        elif owner is not None and not running:
            note = "; not refreshed for 30 s or more: the daemon hangs?"
        lines.append(f"status written {age:.0f} s ago by pid {daemon.get('pid')}{note}")
        if daemon.get("paused"):
            lines.append(f"PAUSED: {daemon['paused']}")
        lines.append(f"in flight: {len(daemon.get('in_flight', []))}, waiting to settle: "
                     f"{daemon.get('waiting', 0)}, "
                     f"tasks followed: {daemon.get('tasks_followed', 0)}")
        progress = {u.get("path"): u for u in daemon.get("uploads") or []
                    if isinstance(u, dict)}
        for path in daemon.get("in_flight", []):
            lines.append(f"  {_in_flight_line(path, progress.get(path))}")
        done = daemon.get("outcomes") or {}
        if done:
            lines.append(("this run: " if running else "last run: ")
                         + ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        credits = daemon.get("credits")
        if isinstance(credits, dict):
            low = " (LOW: under " + f"{credits.get('warning_below', 0):g})" if credits.get("low") else ""
            lines.append(f"credits: {credits.get('balance', 0):g}{low}")
        skipped = daemon.get("not_taken") or {}
        if skipped:
            lines.append("not taken (seen, left alone): " + ", ".join(
                f"{k.replace('_', ' ')} {v}" for k, v in sorted(skipped.items())))
        for folder in daemon.get("folders", []):
            lines.append(f"  folder {folder['path']}: {folder['state']} ({folder['observer']})")
    lines.extend(_holder_lines(status.get("holders") or []))
    files = status["files"]
    lines.append("files by state: " + (", ".join(f"{k} {v}" for k, v in files.items()) or "none"))
    if status["recent_failures"]:
        lines.append("recent problems:")
        for f in status["recent_failures"]:
            lines.append(f"  {f['path']}: {f['state']}: {f['error']}")
    return "\n".join(lines)


def _holder_lines(holders: list[Mapping[str, Any]]) -> list[str]:
    """The cluster: one line per process that works on the store, the most recent beat first."""
    if not holders:
        return []
    alive = sum(1 for h in holders if h.get("alive"))
    lines = [f"cluster: {len(holders)} process{'es' if len(holders) != 1 else ''} "
             f"({alive} alive)"]
    for h in holders:
        version = f" runwatchd {h['version']}" if h.get("version") else ""
        age = h.get("heartbeat_age")
        beat = "never" if age is None else f"{age:.0f} s ago"
        state = "alive" if h.get("alive") else "DEAD"
        lines.append(f"  {h.get('node')} pid {h.get('pid')}{version}: {state}, "
                     f"last heartbeat {beat}, in flight {h.get('in_flight', 0)}")
    return lines


def _in_flight_line(path: str, upload: Mapping[str, Any] | None) -> str:
    if upload is None:
        return f"working on {path}"
    sent, total = upload.get("bytes_sent", 0), upload.get("bytes_total", 0)
    return (f"uploading {path}: {upload.get('percent', 0.0):.0f}% ({human_size(sent)} of "
            f"{human_size(total)})")


def _for_json(status: Mapping[str, Any]) -> dict[str, Any]:
    """The same facts with times as ISO-8601 UTC (epoch seconds are for programs that know
    they are; a reader of JSON expects a date)."""
    out = dict(status)
    if isinstance(out.get("daemon"), dict):
        daemon = out["daemon"] = {**out["daemon"],
                                  "updated_at": iso_time(out["daemon"].get("updated_at"))}
        if isinstance(daemon.get("credits"), dict):
            daemon["credits"] = {**daemon["credits"],
                                 "checked_at": iso_time(daemon["credits"].get("checked_at"))}
    if isinstance(out.get("owner"), dict):
        out["owner"] = {**out["owner"], "since": iso_time(out["owner"].get("since"))}
    out["holders"] = [{**h, "started_at": iso_time(h.get("started_at")),
                       "heartbeat_at": iso_time(h.get("heartbeat_at"))}
                      for h in out.get("holders", [])]
    out["recent_failures"] = [{**f, "at": iso_time(f.get("at"))}
                              for f in out.get("recent_failures", [])]
    return out


def watch(collect: Callable[[], Mapping[str, Any]], out: TextIO, *, as_json: bool = False,
          tty: bool = False, interval: float = WATCH_INTERVAL,
          sleep: Callable[[float], None] = time.sleep, rounds: int | None = None) -> int:
    """`status --watch`: render every `interval` until Ctrl-C (or `rounds` renders); on a
    terminal each render replaces the last (cursor home, clear), else they follow one another.
    Returns the last render's exit code."""
    code, done = EXIT_NOT_RUNNING, 0
    try:
        while rounds is None or done < rounds:
            status = collect()
            code = exit_code(status)
            text = render(status, as_json=as_json)
            out.write(f"\x1b[H\x1b[2J{text}\n" if tty else f"{text}\n\n")
            out.flush()
            done += 1
            if rounds is None or done < rounds:
                sleep(interval)
    except KeyboardInterrupt:
        pass  # the way out of a watch, not a failure
    return code
