"""The `runwatchd` command: dispatch, the small commands, and one exit code per failure.

Only the cli modules exit (this one, daemon_commands and upload_command); everything else raises.
The arguments are in cli/parser.py (built from cli/spec.py), the commands that run the daemon in
daemon_commands, `upload` in upload_command, `init --service` in service_install, what they share
in common. Every command imports what it needs when it runs: `runwatchd --version` and `--help`
load no HTTP client, watcher or config code.

Exit codes: 0 ok, 1 some files failed, 2 usage, 3 `status`: no daemon holds the store (LSB),
78 bad configuration (EX_CONFIG).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from runwatchd.cli.parser import build_parser, parse_args

__all__ = ["build_parser", "main"]

log = logging.getLogger("runwatchd")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from runwatchd.errors import ConfigError, KeyRejected, RunwatchdError, StoreDamaged
    from runwatchd.service.logs import setup_logging

    setup_logging("DEBUG" if args.verbose else "WARNING" if args.quiet else "INFO",
                  args.log_format or "text")
    if args.quiet:
        # The daemon sets its logging up again once it has read [daemon] log_format; -q must
        # outlast that, so INFO and below are switched off for the whole process meanwhile.
        logging.disable(logging.INFO)
    try:
        return COMMANDS[args.command](args)
    except StoreDamaged as e:  # its message says what to do; exit 78 like a config error
        print(f"runwatchd: {e}", file=sys.stderr)
        from runwatchd.cli.common import EXIT_CONFIG

        return EXIT_CONFIG
    except ConfigError as e:
        where = f"{e.source}: " if e.source else ""
        for problem in e.problems:
            print(f"runwatchd: config error: {where}{problem}", file=sys.stderr)
        from runwatchd.cli.common import EXIT_CONFIG  # the config code, only when it is needed

        return EXIT_CONFIG
    except RunwatchdError as e:  # KeyRejected included: its message says it all
        if args.verbose and not isinstance(e, KeyRejected):
            log.exception("failed")
        print(f"runwatchd: {e}", file=sys.stderr)
        from runwatchd.cli.common import EXIT_FAILED

        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        if args.quiet:
            logging.disable(logging.NOTSET)


def cmd_run(args: argparse.Namespace) -> int:
    from runwatchd.cli import daemon_commands

    return daemon_commands.cmd_run(args)


def cmd_scan(args: argparse.Namespace) -> int:
    from runwatchd.cli import daemon_commands

    return daemon_commands.cmd_scan(args)


def cmd_retry(args: argparse.Namespace) -> int:
    from runwatchd.cli import daemon_commands

    return daemon_commands.cmd_retry(args)


def cmd_upload(args: argparse.Namespace) -> int:
    from runwatchd.cli import upload_command

    return upload_command.cmd_upload(args)


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 while a daemon holds the store, 3 (LSB "not running") when none does."""
    from runwatchd.cli.common import command_config
    from runwatchd.config import sources
    from runwatchd.service import status

    cfg = command_config(args, None, required=False)
    state_dir = status.status_state_dir(cfg)
    store_url = sources.resolve_store_url(cfg)
    node = cfg.store.node
    if args.follow:
        return status.watch(lambda: status.collect_status(state_dir, store_url, node=node),
                            sys.stdout, as_json=args.json, tty=sys.stdout.isatty())
    found = status.collect_status(state_dir, store_url, node=node)
    print(status.render(found, as_json=args.json))
    return status.exit_code(found)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Explain the configuration on stdout; every problem on stderr and exit 78, including the
    ones only `run` would meet (no API secret, a bad RUNWAYML_BASE_URL, no folders, a broken
    rules file in a folder). With --rules, check that one rules file alone (no config read)."""
    from runwatchd.cli import check_rules
    from runwatchd.cli.common import EXIT_OK
    from runwatchd.config import load as configmod
    from runwatchd.config import sources
    from runwatchd.config import starter as config_text
    from runwatchd.errors import ConfigError

    if args.rules is not None:
        problems = check_rules.file_problems(args.rules)
        if problems:
            raise ConfigError(problems)
        print(f"{args.rules}: ok")
        return EXIT_OK
    path = sources.find_config(args.config)
    if path is None:
        raise ConfigError(["no config file found (tried -c, $RUNWATCHD_CONFIG, ./runwatchd.toml, "
                           "~/.config/runwatchd/config.toml, /etc/runwatchd/config.toml); "
                           "write one with `runwatchd init`"])
    cfg = configmod.load_config(path)
    print(config_text.explain(cfg))
    problems = []
    for resolve in (sources.resolve_secret, sources.resolve_base_url):
        try:
            resolve(cfg)
        except ConfigError as e:
            problems.extend(e.problems)
    if not cfg.folders:
        problems.append("no folders configured (add a [[folder]] with a path)")
    problems = [f"{cfg.source}: {p}" for p in problems]
    rules_problems, notes = check_rules.config_problems(cfg)
    for note in notes:
        print(f"runwatchd: note: {note}", file=sys.stderr)
    if problems or rules_problems:
        raise ConfigError(problems + rules_problems)
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from runwatchd.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

    if args.service:
        if args.path is not None:
            print("runwatchd: init --service writes /etc/runwatchd/config.toml; give no PATH",
                  file=sys.stderr)
            return EXIT_USAGE
        from runwatchd.cli.service_install import install_service

        return install_service(args.root or Path("/"), sys.stdout, sys.stderr)
    if args.root is not None:
        print("runwatchd: --root only goes with --service", file=sys.stderr)
        return EXIT_USAGE
    from runwatchd.config import starter as config_text

    path = args.path or Path("runwatchd.toml")
    try:
        config_text.write_starter(path)
    except OSError as e:
        if isinstance(e, FileExistsError) and os.path.lexists(path):
            print(f"runwatchd: {path} exists; not overwriting it", file=sys.stderr)
        else:  # e.g. a parent that is a file: mkdir's FileExistsError names the parent
            parents = Path(path).absolute().parents
            where = f": {e.filename}" if e.filename and Path(e.filename).absolute() in parents \
                else ""
            print(f"runwatchd: cannot write {path} ({e.strerror or e}{where})", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {path}; edit the [[folder]] paths, then `runwatchd check-config -c {path}`")
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    from runwatchd.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
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


def cmd_completion(args: argparse.Namespace) -> int:
    from runwatchd.cli.completion import completion_script

    sys.stdout.write(completion_script(args.shell))
    return 0


def cmd_man(args: argparse.Namespace) -> int:
    from runwatchd.cli.manpage import man_page

    sys.stdout.write(man_page())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "scan": cmd_scan, "upload": cmd_upload, "status": cmd_status,
    "check-config": cmd_check_config, "init": cmd_init, "emulator": cmd_emulator,
    "demo": cmd_demo, "retry": cmd_retry, "completion": cmd_completion, "man": cmd_man,
}
