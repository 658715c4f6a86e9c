"""The `runwatchd` command. Only this module exits; everything else raises.

Exit codes: 0 ok, 1 some files failed, 2 usage, 78 bad configuration (EX_CONFIG).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runwatchd import __version__, config as configmod, media, sidecar
from runwatchd.client import RunwayClient
from runwatchd.errors import ConfigError, InvalidFile, KeyRejected, RunwatchdError
from runwatchd.progress import FileProgress, ProgressBar

log = logging.getLogger("runwatchd")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 78
JOURNAL_NAME = "journal.sqlite3"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="runwatchd",
        description="Hot-folder daemon for Runway: uploads what lands in watched folders, writes "
                    "<file>.runway.json sidecars, and runs per-folder generation rules.",
    )
    p.add_argument("--version", action="version", version=f"runwatchd {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    p.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="log line format (default: [daemon] log_format, else text)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("-c", "--config", type=Path, help="config file (TOML)")
        return sp

    run = with_config(sub.add_parser("run", help="the daemon, in the foreground"))
    run.add_argument("--watch", type=Path, action="append", default=[], metavar="DIR",
                     help="watch DIR (repeatable; works without a config file)")
    scan = with_config(sub.add_parser("scan", help="process what is there now, then exit"))
    scan.add_argument("dirs", nargs="*", type=Path, metavar="DIR")
    up = sub.add_parser("upload", help="upload files now, print their runway:// URIs")
    up.add_argument("files", nargs="+", type=Path, metavar="FILE")
    up.add_argument("--json", action="store_true", help="print one JSON document")
    up.add_argument("-j", "--jobs", type=int, default=None,
                    help="uploads in parallel (default: [runway] concurrency, 4)")
    up.add_argument("-c", "--config", type=Path, help="config file for [runway] settings")
    st = with_config(sub.add_parser("status", help="what the daemon knows"))
    st.add_argument("--json", action="store_true")
    with_config(sub.add_parser("check-config", help="validate and explain the configuration"))
    init = sub.add_parser("init", help="write a commented starter config")
    init.add_argument("path", nargs="?", type=Path, default=Path("runwatchd.toml"))
    emu = sub.add_parser("emulator", help="the built-in Runway API emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8765)
    emu.add_argument("--api-key", default=None,
                     help="key the emulator accepts (default: $RUNWAYML_API_SECRET, else "
                          "'emulator-key')")
    emu.add_argument("--faults", default=None, help='fault injection as JSON, e.g. '
                     '\'{"error_rate": 0.3}\'')
    emu.add_argument("--task-seconds", type=float, default=2.0)
    emu.add_argument("--storage-dir", type=Path, default=None)
    demo = sub.add_parser("demo", help="the whole flow offline, on the emulator")
    demo.add_argument("--keep", action="store_true", help="keep the demo folder afterwards")
    retry = with_config(sub.add_parser("retry", help="submit a file's generation again, on purpose"))
    retry.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from runwatchd.logs import setup_logging

    setup_logging("DEBUG" if args.verbose else "INFO", args.log_format or "text")
    try:
        return COMMANDS[args.command](args)
    except ConfigError as e:
        where = f"{e.source}: " if e.source else ""
        for problem in e.problems:
            print(f"runwatchd: config error: {where}{problem}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyRejected as e:
        print(f"runwatchd: {e}", file=sys.stderr)
        return EXIT_FAILED
    except RunwatchdError as e:
        if args.verbose:
            log.exception("failed")
        print(f"runwatchd: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


# -- helpers shared by commands ----------------------------------------------------------------


def _load(args: argparse.Namespace, extra_dirs: list[Path] | None = None,
          required: bool = True) -> configmod.Config:
    path = configmod.find_config(getattr(args, "config", None))
    if path is None:
        if extra_dirs:
            return configmod.config_for_dirs(extra_dirs)
        if not required:
            return configmod.config_for_dirs([])
        raise ConfigError(["no config file found (tried -c, $RUNWATCHD_CONFIG, ./runwatchd.toml, "
                           "~/.config/runwatchd/config.toml, /etc/runwatchd/config.toml); "
                           "write one with `runwatchd init` or use --watch DIR"])
    cfg = configmod.load_config(path)
    if extra_dirs:
        known = {f.path for f in cfg.folders}
        added = tuple(f for f in configmod.config_for_dirs(extra_dirs).folders
                      if f.path not in known)
        cfg = dataclasses.replace(cfg, folders=cfg.folders + added)
    return cfg


def make_client(cfg: configmod.Config, *, on_retry=None,
                attempts: int | None = None) -> RunwayClient:
    secret = configmod.resolve_secret(cfg)
    from runwatchd.logs import install_secret_filter

    install_secret_filter(secret)
    return RunwayClient(secret, configmod.resolve_base_url(cfg), on_retry=on_retry,
                        **_client_options(cfg, attempts))


RETRY_DELAY_ENV = "RUNWATCHD_RETRY_BASE_DELAY"


def _client_options(cfg: configmod.Config, attempts: int | None = None) -> dict:
    """$RUNWATCHD_RETRY_BASE_DELAY (seconds, for tests against a faulty emulator) replaces the
    1 s first retry delay; deliberately not a config key: production has no reason to change it.
    `attempts` replaces the client's default number of tries per request."""
    timeout = getattr(cfg.runway, "timeout", None)
    options: dict = {"timeout": timeout} if timeout else {}
    policy: dict = {"max_attempts": attempts} if attempts else {}
    raw = os.environ.get(RETRY_DELAY_ENV, "").strip()
    if raw:
        try:
            delay = float(raw)
        except ValueError:
            delay = -1.0
        if not 0.0 <= delay <= 60.0:
            raise ConfigError([f"{RETRY_DELAY_ENV}: expected seconds between 0 and 60, "
                               f"got {raw!r}"])
        policy["initial_delay"] = delay
    if policy:
        from runwatchd.client import RetryPolicy

        options["retry"] = RetryPolicy(**policy)
    return options


def _open_journal(cfg: configmod.Config):
    from runwatchd.journal import Journal

    state_dir = configmod.resolve_state_dir(cfg)
    return state_dir, Journal(state_dir / JOURNAL_NAME)


# -- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args, [d.resolve() for d in args.watch])
    if not cfg.folders:
        raise ConfigError(["nothing to watch: add a [[folder]] or pass --watch DIR"], cfg.source)
    return _run_daemon(args, cfg, mode="run")


def cmd_scan(args: argparse.Namespace) -> int:
    dirs = [d.resolve() for d in args.dirs]
    cfg = _load(args, None, required=not dirs)
    tops: dict[Path, list[Path]] = {}  # folder root -> the DIRs to scan inside it
    folders = list(cfg.folders) if not dirs else []
    for d in dirs:
        if not d.is_dir():
            raise ConfigError([f"{d}: not a directory"])
        # The most specific configured folder that covers d: its settings and rule apply.
        owners = [f for f in cfg.folders
                  if f.path == d or (f.recursive and f.path in d.parents)]
        owner = max(owners, key=lambda f: len(f.path.parts), default=None)
        if owner is None:
            owner = configmod.config_for_dirs([d]).folders[0]
        if owner not in folders:
            folders.append(owner)
        tops.setdefault(owner.path, []).append(d)
    if not folders:
        raise ConfigError(["nothing to scan: no folders configured and no DIR given"])
    cfg = dataclasses.replace(cfg, folders=tuple(folders))
    return _run_daemon(args, cfg, mode="scan", tops=tops)


# Journal states `retry` accepts; "running"/"submitting" have a generation in flight.
RETRYABLE_STATES = ("attention", "task_failed", "succeeded", "awaiting_credits", "failed",
                    "to_submit", "retry", "no_sidecar")


def cmd_retry(args: argparse.Namespace) -> int:
    """Submit each FILE's generation again, on purpose: the one way past "needs attention"
    (a task may exist), FAILED or CANCELLED, which the daemon never resubmits by itself."""
    files = [f.resolve() for f in args.files]
    path = configmod.find_config(args.config)
    # Not _load(args, dirs): the files' own folders added as extra rule-less folders would
    # shadow the configured folder (and its rule) that holds them.
    cfg = (configmod.load_config(path) if path is not None
           else configmod.config_for_dirs(sorted({f.parent for f in files})))
    folders = {}
    for f in files:
        owner = max((fc for fc in cfg.folders if fc.path == f.parent
                     or (fc.recursive and fc.path in f.parents)),
                    key=lambda fc: len(fc.path.parts), default=None)
        if owner is None:
            print(f"runwatchd: {f}: not in a watched folder of the configuration",
                  file=sys.stderr)
        else:
            folders[f] = owner
    _state_dir, journal = _open_journal(cfg)
    chosen = set()
    try:
        for f in folders:
            record = journal.get(f)
            state = record.state if record else "unknown to the journal"
            # "submitting" with no daemon holding the journal: a crash after the intent.
            crashed = state == "submitting" and journal.acquire_owner_lock()
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
    code = _run_daemon(args, cfg, mode="scan", only=chosen)
    return code if len(chosen) == len(files) else EXIT_FAILED


def _run_daemon(args, cfg, *, mode: str, tops=None, only=None) -> int:
    from runwatchd.daemon import Daemon
    from runwatchd.notify import Notifier

    if args.log_format is None and cfg.daemon.log_format != "text":
        from runwatchd.logs import setup_logging

        setup_logging("DEBUG" if args.verbose else "INFO", cfg.daemon.log_format)
    metrics = _start_metrics(cfg) if mode == "run" else None
    on_retry = None
    if metrics is not None:
        from runwatchd.metrics import retry_operation

        def on_retry(what: str, _error: BaseException, _delay: float) -> None:
            metrics.retry(retry_operation(what))

    def client_factory(c: configmod.Config) -> RunwayClient:
        return make_client(c, on_retry=on_retry)

    try:
        client = client_factory(cfg)
    except BaseException:
        if metrics:
            metrics.stop()
        raise
    try:
        client.check_key()
    except KeyRejected as e:
        print(f"runwatchd: {e}", file=sys.stderr)
        client.close()
        if metrics:
            metrics.stop()
        return EXIT_CONFIG if mode == "run" else EXIT_FAILED
    except RunwatchdError as e:
        log.warning("could not check the API key at start-up (%s); going on", e)
    state_dir, journal = _open_journal(cfg)

    def reload_config():
        return _load(args, [d.resolve() for d in getattr(args, "watch", [])])

    daemon = Daemon(cfg, client, journal, state_dir=state_dir, mode=mode,
                    notifier=Notifier.from_env() if mode == "run" else None, metrics=metrics,
                    client_factory=client_factory, config_loader=reload_config, scan_tops=tops,
                    only=only)
    _install_signals(daemon)
    try:
        code = daemon.run()
    finally:
        if not daemon.unfinished:  # else workers still use them; the process ends below
            client.close()
            if daemon.client is not client:  # replaced by a reload
                daemon.client.close()
            journal.close()
        if metrics:
            metrics.stop()
    if mode == "scan":
        for path, reason in sorted(daemon.failed_paths.items()):
            print(f"runwatchd: failed: {path}: {reason}", file=sys.stderr)
    if daemon.unfinished:
        # Uploads still running after the grace period: the interpreter's exit would wait for
        # their threads. Nothing is lost: they were never recorded as done, so they start over.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _start_metrics(cfg: configmod.Config):
    """The Prometheus endpoint of [daemon] metrics, or None. A busy port costs the metrics, not
    the uploads: one error line, and the daemon runs on."""
    if not cfg.daemon.metrics:
        return None
    from runwatchd.metrics import Metrics

    metrics = Metrics()
    try:
        metrics.start_server(cfg.daemon.metrics)
    except OSError as e:
        log.error("metrics: cannot listen on %s (%s); running without metrics",
                  cfg.daemon.metrics, e.strerror or e)
        return None
    return metrics


def _install_signals(daemon) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    interrupts = []

    def stop(signum, _frame):
        interrupts.append(signum)
        if len(interrupts) > 1 and signum == signal.SIGINT:
            os._exit(130)  # a second Ctrl-C: the user does not want to wait for the grace period
        log.info("received %s: finishing uploads in flight, then exiting",
                 signal.Signals(signum).name)
        daemon.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())


# The daemon tries a failed file again later; a one-shot upload has no later, so it is more
# patient: at a 30% error rate, 8 tries lose 1 file in 15,000 (a 50-file batch fails 1 run in
# 300), 12 tries 1 in 1.9 million (the 900 s retry deadline still bounds a real outage).
UPLOAD_ATTEMPTS = 12


def cmd_upload(args: argparse.Namespace) -> int:
    """Upload FILEs now. stdout carries only their URIs, in the order given (or one --json
    document); stderr one line per failed file, the progress bar on a terminal, and retry notices
    only with --verbose. A file failing the local checks never reaches the network."""
    cfg = _load(args, None, required=False)
    files = list(dict.fromkeys(f.absolute() for f in args.files))
    sizes: dict[Path, int] = {}
    failures: dict[Path, str] = {}
    for f in files:
        try:
            sizes[f] = media.check_file(f).st_size
        except InvalidFile as e:
            failures[f] = str(e)
            print(f"runwatchd: {e}", file=sys.stderr)
    results: dict[Path, dict] = {}
    if sizes:
        try:
            _upload_files(args, cfg, sizes, results, failures)
        except KeyboardInterrupt:
            print("runwatchd: interrupted; uploads in flight were abandoned (each file with a "
                  "sidecar is done)", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)  # worker threads still blocked in a request would delay a normal exit
    if args.json:
        doc = {"uploads": [results[f] for f in files if f in results],
               "failures": [{"path": str(f), "error": failures[f]} for f in files
                            if f in failures]}
        print(json.dumps(doc, indent=2))
    return EXIT_FAILED if failures else EXIT_OK


def _upload_files(args: argparse.Namespace, cfg: configmod.Config, sizes: dict[Path, int],
                  results: dict[Path, dict], failures: dict[Path, str]) -> None:
    """Upload in parallel, filling `results` and `failures`; URIs are printed as they come, in
    order, unless --json. KeyRejected ends everything (every other file would fail the same)."""
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    client = make_client(cfg, on_retry=(lambda *_: bar.retried()) if bar else None,
                         attempts=UPLOAD_ATTEMPTS)
    client_log = logging.getLogger("runwatchd.client")
    old_level = client_log.level
    if not args.verbose:
        # A retry that ends well is no news in a one-shot command (cron mails whatever reaches
        # stderr); the bar counts retries on a terminal, and a failure still gets its line.
        client_log.setLevel(logging.ERROR)
    bar_filter = bar.log_filter() if bar else None
    for handler in logging.getLogger().handlers if bar_filter else ():
        handler.addFilter(bar_filter)
    jobs = max(1, args.jobs or cfg.runway.concurrency)
    # `jobs` transfers at once, and as many files again asking for their upload slots meanwhile:
    # for small files the API round trip is most of the time (the daemon does the same).
    client.limit_transfers(jobs)
    pool = ThreadPoolExecutor(2 * jobs, thread_name_prefix="runwatchd-upload")
    wait = True
    try:
        handles = {f: bar.track(f.name, size) if bar else None for f, size in sizes.items()}
        client.check_key()
        futures = {f: pool.submit(_upload_one, client, f, handles[f]) for f in sizes}
        for f, fut in futures.items():
            try:
                results[f] = fut.result()
            except KeyRejected:
                raise
            except RunwatchdError as e:
                text = str(e)
                failures[f] = text if text.startswith(f"{f.name}:") else f"{f.name}: {text}"
                if bar:
                    bar.clear()
                print(f"runwatchd: {failures[f]}", file=sys.stderr)
            else:
                if not args.json:
                    if bar and sys.stdout.isatty():
                        bar.clear()
                    print(results[f]["runway_uri"], flush=True)
    except KeyboardInterrupt:
        wait = False  # Ctrl-C must not wait for a 200 MB upload to end
        raise
    finally:
        pool.shutdown(wait=wait, cancel_futures=True)
        client.close()
        if bar:
            bar.close()
        for handler in logging.getLogger().handlers if bar_filter else ():
            handler.removeFilter(bar_filter)
        client_log.setLevel(old_level)


def _upload_one(client: RunwayClient, path: Path, progress: FileProgress | None) -> dict:
    ok = False
    try:
        result = client.upload(path, progress=progress)
        data = sidecar.build_sidecar(path, runway_uri=result.runway_uri,
                                     uploaded_at=result.uploaded_at, size=result.size,
                                     mtime_ns=result.mtime_ns, sha256=result.sha256)
        try:
            sidecar.write_sidecar(path, data)
        except OSError as e:
            raise RunwatchdError(f"{path.name}: uploaded as {result.runway_uri}, but its sidecar "
                                 f"cannot be written ({e.strerror or e})") from e
        ok = True
    finally:
        if progress is not None:
            progress.finish(ok)
    return {"path": str(path), "sidecar": str(sidecar.sidecar_path(path)), **data}


def cmd_status(args: argparse.Namespace) -> int:
    from runwatchd.status import render_status

    cfg = _load(args, None, required=False)
    print(render_status(configmod.resolve_state_dir(cfg), as_json=args.json))
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    """Explain the configuration on stdout; every problem on stderr and exit 78, including the
    ones only `run` would meet (no API secret, a bad RUNWAYML_BASE_URL)."""
    path = configmod.find_config(args.config)
    if path is None:
        raise ConfigError(["no config file found (tried -c, $RUNWATCHD_CONFIG, ./runwatchd.toml, "
                           "~/.config/runwatchd/config.toml, /etc/runwatchd/config.toml); "
                           "write one with `runwatchd init`"])
    cfg = configmod.load_config(path)
    print(configmod.explain(cfg))
    problems: list[str] = []
    for resolve in (configmod.resolve_secret, configmod.resolve_base_url):
        try:
            resolve(cfg)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems, str(cfg.source))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    try:
        configmod.write_starter(args.path)
    except OSError as e:
        if isinstance(e, FileExistsError) and os.path.lexists(args.path):
            print(f"runwatchd: {args.path} exists; not overwriting it", file=sys.stderr)
        else:  # e.g. a parent that is a file: mkdir's FileExistsError names the parent
            parents = Path(args.path).absolute().parents
            where = f": {e.filename}" if e.filename and Path(e.filename).absolute() in parents \
                else ""
            print(f"runwatchd: cannot write {args.path} ({e.strerror or e}{where})",
                  file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.path}; edit the [[folder]] paths, then `runwatchd check-config -c "
          f"{args.path}`")
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    from runwatchd.emulator import FaultConfig, serve_forever

    label = None
    key = args.api_key
    if not key:
        key = os.environ.get("RUNWAYML_API_SECRET", "").strip()
        label = "the value of $RUNWAYML_API_SECRET" if key else None
    key = key or "emulator-key"
    try:
        faults = json.loads(args.faults) if args.faults else None
        if faults is not None:
            if not isinstance(faults, dict):
                raise ValueError("expected a JSON object, e.g. '{\"error_rate\": 0.3}'")
            FaultConfig.from_mapping(faults)
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError too
        print(f"runwatchd: --faults: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        serve_forever(args.host, args.port, key, faults, args.task_seconds, args.storage_dir,
                      key_label=label)
    except OSError as e:
        print(f"runwatchd: emulator: cannot listen on {args.host}:{args.port} "
              f"({e.strerror or e})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from runwatchd.demo import run_demo

    return run_demo(keep=args.keep)


COMMANDS = {
    "run": cmd_run, "scan": cmd_scan, "upload": cmd_upload, "status": cmd_status,
    "check-config": cmd_check_config, "init": cmd_init, "emulator": cmd_emulator,
    "demo": cmd_demo, "retry": cmd_retry,
}
