"""The argparse parser, built from cli/spec.py, with the conventions of rclone and restic.

Global options (-v, -q, --log-format, and -c for the commands that read a config) are accepted
before or after the command: `runwatchd upload --verbose x` and `runwatchd -v upload x` mean the
same. Each has an environment variable (RUNWATCHD_VERBOSE, ...); the command line wins over the
environment, which wins over the config file, which wins over the defaults. A mistyped command
or choice gets a did-you-mean.
"""

from __future__ import annotations

import argparse
import difflib
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, Protocol

from runwatchd import __version__
from runwatchd.cli import spec

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


class _Container(Protocol):
    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action: ...


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that suggests the closest command or choice to a mistyped one."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse 3.11 has no suggest_on_error (3.14 added it by overriding this same method).
        if action.choices is None or value in action.choices:
            return
        names = [str(c) for c in action.choices]
        close = difflib.get_close_matches(str(value), names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if action.dest == "command":
            raise argparse.ArgumentError(
                None, f"unknown command {value!r} (see `{spec.PROG} --help`){hint}")
        listed = ", ".join(repr(n) for n in names)
        raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {listed})"
                                             f"{hint}")


class _Formatter(argparse.HelpFormatter):
    """Wraps each line of a description or epilog on its own and keeps indented lines (the
    examples) as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            indent + line if not line or line.startswith(" ")
            else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
            for line in text.splitlines())


def _epilog(cmd: spec.Command) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in cmd.examples)


def _add(group: _Container, opt: spec.Opt, *, suppress: bool = False) -> None:
    """One spec.Opt as an argparse argument; `suppress` leaves it out of the namespace when
    absent, so a global option given before the command is not reset by the command's parser."""
    kwargs: dict[str, Any] = {"help": opt.help}
    if opt.dest:
        kwargs["dest"] = opt.dest
    if not opt.takes_value:
        kwargs["action"] = "store_true"
    else:
        if opt.repeat:
            kwargs["action"] = "append"
        if opt.type is not None:
            kwargs["type"] = opt.type
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        if opt.nargs:
            kwargs["nargs"] = opt.nargs
    if suppress:
        kwargs["default"] = argparse.SUPPRESS
    elif not opt.takes_value:
        kwargs["default"] = False
    elif not opt.positional or opt.nargs in ("?", "*"):
        kwargs["default"] = list(opt.default) if isinstance(opt.default, list) else opt.default
    group.add_argument(*opt.flags, **kwargs)


def build_parser() -> Parser:
    p = Parser(prog=spec.PROG, description=spec.DESCRIPTION,
               formatter_class=_Formatter,
               epilog="examples:\n  runwatchd run --watch /srv/hot\n"
                      "  runwatchd -v scan -c runwatchd.toml\n\n"
                      f"Each global option may also follow the command. Precedence: "
                      f"{spec.PRECEDENCE}.\n"
                      f"`{spec.PROG} COMMAND --help` shows a command's options; "
                      f"`{spec.PROG} man` the manual.")
    p.add_argument("--version", action="version", version=f"{spec.PROG} {__version__}")
    g = p.add_argument_group("global options")
    for opt in spec.GLOBAL_OPTIONS:
        _add(g, opt)
    _add(g, spec.CONFIG)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in spec.COMMANDS:
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or None,
                            epilog=_epilog(cmd),
                            formatter_class=_Formatter)
        for opt in spec.options_of(cmd):
            _add(sp, opt, suppress=opt is spec.CONFIG)
        g = sp.add_argument_group("global options")
        for opt in spec.GLOBAL_OPTIONS:
            _add(g, opt, suppress=True)
    return p


def env_flag(env: Mapping[str, str], name: str) -> bool | None:
    """$name as a boolean; None when unset; ValueError for a word that is neither."""
    if name not in env:
        return None
    word = env[name].strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"${name}: expected 1 or 0 (true/false, yes/no, on/off), got {env[name]!r}")


def parse_args(argv: Sequence[str] | None = None,
               env: Mapping[str, str] = os.environ) -> argparse.Namespace:
    """The command line, completed from the environment; exits 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        apply_environment(args, env)
    except ValueError as e:
        _usage_error(parser, str(e))
    if args.verbose and args.quiet:
        _usage_error(parser, "-v/--verbose and -q/--quiet exclude each other")
    if args.config is not None and not spec.command(args.command).config:
        _usage_error(parser, f"-c/--config does not apply to `{spec.PROG} {args.command}`")
    return args


def apply_environment(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Fill the global options the command line left unset from RUNWATCHD_* (ValueError for a
    value that means nothing). -v or -q on the command line overrides both variables."""
    if not args.verbose and not args.quiet:
        verbose, quiet = env_flag(env, "RUNWATCHD_VERBOSE"), env_flag(env, "RUNWATCHD_QUIET")
        if verbose and quiet:
            raise ValueError("$RUNWATCHD_VERBOSE and $RUNWATCHD_QUIET are both set")
        args.verbose, args.quiet = bool(verbose), bool(quiet)
    if args.log_format is None and env.get("RUNWATCHD_LOG_FORMAT", "").strip():
        word = env["RUNWATCHD_LOG_FORMAT"].strip().lower()
        if word not in spec.LOG_FORMATS:
            raise ValueError(f"$RUNWATCHD_LOG_FORMAT: expected text or json, got "
                             f"{env['RUNWATCHD_LOG_FORMAT']!r}")
        args.log_format = word


def _usage_error(parser: Parser, message: str) -> NoReturn:
    parser.error(message)
