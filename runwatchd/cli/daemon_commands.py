"""The commands that run the daemon (run, scan, retry), with signals and metrics around it.

`run` watches until stopped; `scan` processes what is there now, then exits; `retry` submits a
file's generation again, on purpose. SIGTERM and Ctrl-C only ask the daemon to stop (a second
Ctrl-C exits at once), SIGHUP reloads the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from runwatchd.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_USAGE,
    command_config,
    make_client,
    open_journal,
)
from runwatchd.config import load as configmod
from runwatchd.config import sources
from runwatchd.daemon.policy import RETRY, RUN, SCAN, RunPolicy, Scope
from runwatchd.errors import ConfigError, KeyRejected, RunwatchdError
from runwatchd.lifecycle.states import RETRYABLE_STATES
from runwatchd.runway.client import RunwayClient

if TYPE_CHECKING:
    from runwatchd.daemon.core import Daemon
    from runwatchd.service.metrics import Metrics
    from runwatchd.store.base import Store

log = logging.getLogger("runwatchd")

# The start-up key check only proves the key; with the API unreachable the daemon starts anyway
# and its uploads retry on their own, so a few quick tries beat holding systemd's start for minutes.
STARTUP_KEY_CHECK_ATTEMPTS = 3


def cmd_run(args: argparse.Namespace) -> int:
    cfg = command_config(args, [d.resolve() for d in args.watch])
    if not cfg.folders:
        raise ConfigError(["nothing to watch: add a [[folder]] or pass --watch DIR"],
                          str(cfg.source) if cfg.source else None)
    return _run_daemon(args, cfg, RUN)


def cmd_scan(args: argparse.Namespace) -> int:
    dirs = [d.resolve() for d in args.dirs]
    cfg = command_config(args, None, required=not dirs)
    tops: dict[Path, list[Path]] = {}  # folder root -> the DIRs to scan inside it
    folders = list(cfg.folders) if not dirs else []
    for d in dirs:
        if not d.is_dir():
            raise ConfigError([f"{d}: not a directory"])
        # The most specific configured folder that covers d: its settings and rule apply.
        owner = cfg.folder_covering(d)
        if owner is None:
            owner = configmod.config_for_dirs([d]).folders[0]
        if owner not in folders:
            folders.append(owner)
        tops.setdefault(owner.path, []).append(d)
    if not folders:
        raise ConfigError(["nothing to scan: no folders configured and no DIR given"])
    cfg = dataclasses.replace(cfg, folders=tuple(folders))
    return _run_daemon(args, cfg, SCAN, Scope.of(tops=tops))


def cmd_retry(args: argparse.Namespace) -> int:
    """Submit each FILE's generation again, on purpose: the one way past "needs attention"
    (a task may exist), FAILED or CANCELLED, which the daemon never resubmits by itself."""
    files = [f.resolve() for f in args.files]
    path = sources.find_config(args.config)
    # Not command_config(args, dirs): the files' own folders added as extra rule-less folders would
    # shadow the configured folder (and its rule) that holds them.
    cfg = (configmod.load_config(path) if path is not None
           else configmod.config_for_dirs(sorted({f.parent for f in files})))
    folders = {}
    for f in files:
        owner = cfg.folder_covering(f.parent)
        if owner is None:
            print(f"runwatchd: {f}: not in a watched folder of the configuration",
                  file=sys.stderr)
        else:
            folders[f] = owner
    _state_dir, journal = open_journal(cfg)
    chosen = set()
    try:
        for f in folders:
            record = journal.get(f)
            state = record.state if record else "unknown to the journal"
            # "submitting" with no daemon holding the journal: a crash after the intent.
            crashed = state == "submitting" and journal.take_ownership()
            if record is None or (state not in RETRYABLE_STATES and not crashed):
                why = ("its generation is in flight" if state in ("running", "submitting")
                       else "nothing to retry")
                print(f"runwatchd: {f}: {why} (state: {state})", file=sys.stderr)
                continue
            # The generation runs again with the rule as it is now. Only if the row did not move
            # meanwhile (a running daemon may be submitting it): then claim_submit lets exactly
            # one submission through.
            if not journal.update_if(f, state, state="retry", task_id=None, task_status=None,
                                     failure=None, failure_code=None, error=None, outputs=[],
                                     attempts=0, next_attempt=None):
                print(f"runwatchd: {f}: changed while looking at it; try again", file=sys.stderr)
                continue
            log.info("retrying %s on purpose (was %s)", f, state)
            chosen.add(f)
    finally:
        journal.close()
    if not chosen:
        return EXIT_FAILED
    wanted = tuple(dict.fromkeys(folders[f] for f in chosen))
    cfg = dataclasses.replace(cfg, folders=wanted)
    code = _run_daemon(args, cfg, RETRY, Scope.of(only=chosen))
    return code if len(chosen) == len(files) else EXIT_FAILED


def _run_daemon(args: argparse.Namespace, cfg: configmod.Config, policy: RunPolicy,
                scope: Scope | None = None) -> int:
    if args.log_format is None and cfg.daemon.log_format != "text":
        from runwatchd.service.logs import setup_logging

        setup_logging("DEBUG" if args.verbose else "INFO", cfg.daemon.log_format)
    state_dir, journal = open_journal(cfg)
    if policy.watch and not journal.take_ownership():
        # One daemon per store: two would both repair "crashes" that are the other's work in
        # progress. `scan` and `retry` beside it are fine (they go through claim_submit).
        print(f"runwatchd: {_owner_line(journal)} already runs a daemon on {state_dir}; "
              "stop it first (or give this one another state_dir)", file=sys.stderr)
        journal.close()
        return EXIT_USAGE
    try:
        return _run_owned(args, cfg, policy, scope, state_dir, journal)
    finally:
        journal.close()


def _owner_line(journal: Store) -> str:
    owner = journal.owner()
    if owner is None or owner.pid is None:
        return "another process"
    return f"process {owner.pid}" + (f" on {owner.node}" if owner.node else "")


def _run_owned(args: argparse.Namespace, cfg: configmod.Config, policy: RunPolicy,
               scope: Scope | None, state_dir: Path, journal: Store) -> int:
    from runwatchd.daemon.core import Daemon
    from runwatchd.service.notify import Notifier

    metrics = _start_metrics(cfg) if policy.service else None
    on_retry = None
    if metrics is not None:
        def on_retry(operation: str, _error: BaseException, _delay: float) -> None:
            metrics.retry(operation)

    def client_factory(c: configmod.Config) -> RunwayClient:
        return make_client(c, on_retry=on_retry)

    try:
        client = client_factory(cfg)
    except BaseException:
        if metrics:
            metrics.stop()
        raise
    try:
        client.check_key(attempts=STARTUP_KEY_CHECK_ATTEMPTS)
    except KeyRejected as e:
        print(f"runwatchd: {e}", file=sys.stderr)
        client.close()
        if metrics:
            metrics.stop()
        return EXIT_CONFIG if policy.service else EXIT_FAILED
    except RunwatchdError as e:
        log.warning("could not check the API key at start-up (%s); going on", e)

    def reload_config() -> configmod.Config:
        return command_config(args, [d.resolve() for d in getattr(args, "watch", [])])

    daemon = Daemon(cfg, client, journal, state_dir=state_dir, policy=policy, scope=scope,
                    notifier=Notifier.from_env() if policy.service else None, metrics=metrics,
                    client_factory=client_factory, config_loader=reload_config)
    web = None
    try:
        if policy.service:
            from runwatchd.service.web.daemon_source import start_web_for

            web = start_web_for(daemon, metrics=metrics)  # ConfigError (token file): exit 78
        _install_signals(daemon)
        code = daemon.run()
    finally:
        if web is not None:
            web.stop()
        if not daemon.unfinished:  # else workers still use them; the process ends below
            client.close()
            if daemon.client_ref.current is not client:  # replaced by a reload
                daemon.client_ref.current.close()
        if metrics:
            metrics.stop()
    if policy.report_failures:
        for path, reason in sorted(daemon.book.failed_paths().items()):
            print(f"runwatchd: failed: {path}: {reason}", file=sys.stderr)
    if daemon.unfinished:
        # Uploads still running after the grace period: the interpreter's exit would wait for
        # their threads. Nothing is lost: they were never recorded as done, so they start over.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _start_metrics(cfg: configmod.Config) -> Metrics | None:
    """The Prometheus endpoint of [daemon] metrics, or None. A busy port costs the metrics, not
    the uploads: one error line, and the daemon runs on."""
    if not cfg.daemon.metrics:
        return None
    from runwatchd.service.metrics import Metrics

    metrics = Metrics(node=cfg.store.node)
    if cfg.daemon.metrics == cfg.daemon.web:
        return metrics  # the status page's listener serves /metrics too: one port, one server
    try:
        metrics.start_server(cfg.daemon.metrics)
    except OSError as e:
        log.error("metrics: cannot listen on %s (%s); running without metrics",
                  cfg.daemon.metrics, e.strerror or e)
        return None
    return metrics


def _install_signals(daemon: Daemon) -> None:
    """SIGTERM/SIGINT stop, SIGHUP reloads. The handlers only set flags and write to the
    daemon's self-pipe: a handler that takes a lock (Event.set(), a log line) deadlocks when the
    signal lands while the main thread holds that lock (issue 13)."""
    if threading.current_thread() is not threading.main_thread():
        return
    interrupts: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        interrupts.append(signum)
        if len(interrupts) > 1 and signum == signal.SIGINT:
            os._exit(130)  # a second Ctrl-C: the user does not want to wait for the grace period
        daemon.request_stop(f"received {signal.Signals(signum).name}")

    def reload(_signum: int, _frame: FrameType | None) -> None:
        daemon.request_reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
