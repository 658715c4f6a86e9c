"""The `runwatchd` command: its arguments, the small commands, and one exit code per failure.

Only the cli modules exit (this one, cli_daemon and cli_upload); everything else raises. The
commands that run the daemon live in cli_daemon, `upload` in cli_upload, what they share in
cli_common.

Exit codes: 0 ok, 1 some files failed, 2 usage, 78 bad configuration (EX_CONFIG).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from runwatchd.config import load as configmod
from runwatchd import __version__
from runwatchd.config import starter as config_text
from runwatchd.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, command_config
from runwatchd.cli.daemon_commands import cmd_retry, cmd_run, cmd_scan
from runwatchd.cli.upload_command import cmd_upload
from runwatchd.errors import ConfigError, KeyRejected, RunwatchdError

log = logging.getLogger("runwatchd")


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
    from runwatchd.service.logs import setup_logging

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


def cmd_status(args: argparse.Namespace) -> int:
    from runwatchd.service.status import render_status

    cfg = command_config(args, None, required=False)
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
    print(config_text.explain(cfg))
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
        config_text.write_starter(args.path)
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
    from runwatchd.cli.demo import run_demo

    return run_demo(keep=args.keep)


COMMANDS = {
    "run": cmd_run, "scan": cmd_scan, "upload": cmd_upload, "status": cmd_status,
    "check-config": cmd_check_config, "init": cmd_init, "emulator": cmd_emulator,
    "demo": cmd_demo, "retry": cmd_retry,
}
