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
from runwatchd.progress import ProgressBar

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
    up.add_argument("-j", "--jobs", type=int, default=4, help="uploads in parallel (default 4)")
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


def make_client(cfg: configmod.Config) -> RunwayClient:
    secret = configmod.resolve_secret(cfg)
    from runwatchd.logs import install_secret_filter

    install_secret_filter(secret)
    return RunwayClient(secret, configmod.resolve_base_url(cfg), **_client_options(cfg))


def _client_options(cfg: configmod.Config) -> dict:
    timeout = getattr(cfg.runway, "timeout", None)
    return {"timeout": timeout} if timeout else {}


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
    tops: dict[Path, Path] = {}
    folders = list(cfg.folders) if not dirs else []
    for d in dirs:
        if not d.is_dir():
            raise ConfigError([f"{d}: not a directory"])
        owner = next((f for f in cfg.folders if f.path == d or f.path in d.parents), None)
        if owner is None:
            owner = configmod.config_for_dirs([d]).folders[0]
        if owner not in folders:
            folders.append(owner)
        tops[owner.path] = d if owner.path != d else owner.path
    if not folders:
        raise ConfigError(["nothing to scan: no folders configured and no DIR given"])
    cfg = dataclasses.replace(cfg, folders=tuple(folders))
    return _run_daemon(args, cfg, mode="scan", tops=tops)


def cmd_retry(args: argparse.Namespace) -> int:
    files = [f.resolve() for f in args.files]
    cfg = _load(args, sorted({f.parent for f in files}))
    state_dir, journal = _open_journal(cfg)
    for f in files:
        record = journal.get(f)
        if record is None or record.state not in ("attention", "task_failed", "awaiting_credits"):
            print(f"runwatchd: {f}: nothing to retry (state: "
                  f"{record.state if record else 'unknown'})", file=sys.stderr)
            continue
        journal.update(f, state="uploaded", task_id=None, task_status=None, rule_fp=None,
                       failure=None, failure_code=None, error=None, outputs=[])
        data = sidecar.read_sidecar(f)
        if data is not None:
            data.pop("task", None)
            sidecar.write_sidecar(f, data)
        log.info("retrying %s on purpose", f)
    journal.close()
    folders = [fc for fc in cfg.folders if any(fc.path in f.parents for f in files)]
    cfg = dataclasses.replace(cfg, folders=tuple(folders))
    return _run_daemon(args, cfg, mode="scan", only=set(files))


def _run_daemon(args, cfg, *, mode: str, tops=None, only=None) -> int:
    from runwatchd.daemon import Daemon
    from runwatchd.notify import Notifier

    if args.log_format is None and cfg.daemon.log_format != "text":
        from runwatchd.logs import setup_logging

        setup_logging("DEBUG" if args.verbose else "INFO", cfg.daemon.log_format)
    client = make_client(cfg)
    try:
        client.check_key()
    except KeyRejected as e:
        print(f"runwatchd: {e}", file=sys.stderr)
        return EXIT_CONFIG if mode == "run" else EXIT_FAILED
    except RunwatchdError as e:
        log.warning("could not check the API key at start-up (%s); going on", e)
    state_dir, journal = _open_journal(cfg)
    metrics = None
    if cfg.daemon.metrics and mode == "run":
        from runwatchd.metrics import Metrics

        metrics = Metrics()
        host, port = metrics.start_server(cfg.daemon.metrics)
        log.info("metrics on http://%s:%d/metrics", host, port)

    def reload_config():
        return _load(args, [d.resolve() for d in getattr(args, "watch", [])])

    daemon = Daemon(cfg, client, journal, state_dir=state_dir, mode=mode,
                    notifier=Notifier.from_env() if mode == "run" else None, metrics=metrics,
                    client_factory=make_client, config_loader=reload_config, scan_tops=tops,
                    only=only)
    _install_signals(daemon)
    try:
        code = daemon.run()
    finally:
        client.close()
        journal.close()
        if metrics:
            metrics.stop()
    if mode == "scan":
        for path, reason in sorted(daemon.failed_paths.items()):
            print(f"runwatchd: failed: {path}: {reason}", file=sys.stderr)
    return code


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


def cmd_upload(args: argparse.Namespace) -> int:
    cfg = _load(args, None, required=False)
    files = [f.absolute() for f in args.files]
    ok_files, failures = [], {}
    for f in files:
        try:
            media.check_file(f)
            ok_files.append(f)
        except InvalidFile as e:
            failures[f] = str(e)
            print(f"runwatchd: {e}", file=sys.stderr)
    results: dict[Path, dict] = {}
    if ok_files:
        client = make_client(cfg)
        bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
        try:
            client.check_key()
            with ThreadPoolExecutor(max(1, args.jobs)) as pool:
                futures = {f: pool.submit(_upload_one, client, f, bar) for f in ok_files}
                for f, fut in futures.items():
                    try:
                        results[f] = fut.result()
                    except KeyRejected:
                        raise
                    except RunwatchdError as e:
                        failures[f] = str(e)
                        print(f"runwatchd: {f.name}: {e}", file=sys.stderr)
        finally:
            client.close()
            if bar:
                bar.close()
    if args.json:
        doc = {"uploads": [results[f] for f in files if f in results],
               "failures": [{"path": str(f), "error": msg} for f, msg in failures.items()]}
        print(json.dumps(doc, indent=2))
    else:
        for f in files:
            if f in results:
                print(results[f]["runway_uri"])
    return EXIT_FAILED if failures else EXIT_OK


def _upload_one(client: RunwayClient, path: Path, bar) -> dict:
    progress = bar.track(path.name, path.stat().st_size) if bar else None
    result = client.upload(path, progress=progress)
    data = sidecar.build_sidecar(path, runway_uri=result.runway_uri,
                                 uploaded_at=result.uploaded_at, size=result.size,
                                 mtime_ns=result.mtime_ns, sha256=result.sha256)
    sidecar.write_sidecar(path, data)
    return {"path": str(path), "sidecar": str(sidecar.sidecar_path(path)), **data}


def cmd_status(args: argparse.Namespace) -> int:
    from runwatchd.status import render_status

    cfg = _load(args, None, required=False)
    print(render_status(configmod.resolve_state_dir(cfg), as_json=args.json))
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    path = configmod.find_config(args.config)
    if path is None:
        raise ConfigError(["no config file found; write one with `runwatchd init`"])
    cfg = configmod.load_config(path)
    print(configmod.explain(cfg))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    try:
        configmod.write_starter(args.path)
    except FileExistsError:
        print(f"runwatchd: {args.path} exists; not overwriting it", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.path}; edit the [[folder]] paths, then `runwatchd check-config -c "
          f"{args.path}`")
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    from runwatchd.emulator import serve_forever

    key = args.api_key or os.environ.get("RUNWAYML_API_SECRET") or "emulator-key"
    try:
        faults = json.loads(args.faults) if args.faults else None
    except json.JSONDecodeError as e:
        print(f"runwatchd: --faults is not valid JSON: {e}", file=sys.stderr)
        return EXIT_USAGE
    serve_forever(args.host, args.port, key, faults, args.task_seconds, args.storage_dir)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from runwatchd.demo import run_demo

    return run_demo(keep=args.keep)


COMMANDS = {
    "run": cmd_run, "scan": cmd_scan, "upload": cmd_upload, "status": cmd_status,
    "check-config": cmd_check_config, "init": cmd_init, "emulator": cmd_emulator,
    "demo": cmd_demo, "retry": cmd_retry,
}
