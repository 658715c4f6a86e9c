"""Global options before or after the command, RUNWATCHD_* variables, did-you-mean, and help
that documents every argument with an example."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAST_FAULTS, cli_env, make_media, run_cli

from runwatchd.cli import spec
from runwatchd.cli.parser import build_parser, parse_args
from runwatchd.emulator import Emulator

SECRET = "key_cli_options_test_5Yh2"


def parsed(argv: list[str], **env: str) -> argparse.Namespace:
    return parse_args(argv, env)


def usage_error(argv: list[str], **env: str) -> str:
    """The one-line error argparse prints for `argv` (it exits 2)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        parse_args(argv, env)
    assert 2 == info.value.code
    return err.getvalue().splitlines()[-1]


@pytest.mark.parametrize("argv", [
    ["-v", "--log-format", "json", "upload", "x.jpg"],
    ["upload", "--verbose", "x.jpg", "--log-format", "json"],
    ["--log-format", "json", "upload", "x.jpg", "-v"],
])
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    """-v and --log-format mean the same before the command, after it, or split around it."""
    args = parsed(argv)
    assert ("upload", True, False, "json", [Path("x.jpg")]) == (
        args.command, args.verbose, args.quiet, args.log_format, args.files)


@pytest.mark.parametrize("argv", [["-c", "a.toml", "status"], ["status", "-c", "a.toml"],
                                  ["status", "--config=a.toml"]])
def test_config_before_or_after_a_command_that_reads_one(argv: list[str]) -> None:
    """-c goes before or after a command that reads a config."""
    assert Path("a.toml") == parsed(argv).config


def test_config_refused_for_a_command_without_one() -> None:
    """-c before `init` (which reads no config) is a usage error, not silently ignored."""
    assert "runwatchd: error: -c/--config does not apply to `runwatchd init`" == usage_error(
        ["-c", "a.toml", "init"])


def test_quiet_and_verbose_exclude_each_other() -> None:
    """-v with -q is a usage error wherever each stands."""
    assert "runwatchd: error: -v/--verbose and -q/--quiet exclude each other" == usage_error(
        ["-v", "status", "-q"])


@pytest.mark.parametrize(("env", "argv", "expected"), [
    ({"RUNWATCHD_VERBOSE": "1"}, [], (True, False, None)),
    ({"RUNWATCHD_QUIET": "yes"}, [], (False, True, None)),
    ({"RUNWATCHD_VERBOSE": "0"}, [], (False, False, None)),
    ({"RUNWATCHD_LOG_FORMAT": "JSON"}, [], (False, False, "json")),
    ({"RUNWATCHD_VERBOSE": "1"}, ["-q"], (False, True, None)),
    ({"RUNWATCHD_QUIET": "1"}, ["--verbose"], (True, False, None)),
    ({"RUNWATCHD_LOG_FORMAT": "json"}, ["--log-format", "text"], (False, False, "text")),
])
def test_environment_fills_what_the_command_line_leaves(env: dict[str, str], argv: list[str],
                                                        expected: tuple[object, ...]) -> None:
    """RUNWATCHD_VERBOSE/QUIET/LOG_FORMAT apply unless the command line says otherwise."""
    args = parsed(["status", *argv], **env)
    assert expected == (args.verbose, args.quiet, args.log_format)


@pytest.mark.parametrize(("env", "expected"), [
    ({"RUNWATCHD_VERBOSE": "maybe"}, "runwatchd: error: $RUNWATCHD_VERBOSE: expected 1 or 0 "
                                     "(true/false, yes/no, on/off), got 'maybe'"),
    ({"RUNWATCHD_LOG_FORMAT": "xml"}, "runwatchd: error: $RUNWATCHD_LOG_FORMAT: expected text "
                                      "or json, got 'xml'"),
    ({"RUNWATCHD_VERBOSE": "1", "RUNWATCHD_QUIET": "1"},
     "runwatchd: error: $RUNWATCHD_VERBOSE and $RUNWATCHD_QUIET are both set"),
])
def test_bad_environment_is_a_usage_error(env: dict[str, str], expected: str) -> None:
    """A RUNWATCHD_* value that means nothing is one usage line, exit 2."""
    assert expected == usage_error(["status"], **env)


@pytest.mark.parametrize(("argv", "expected"), [
    (["uplod", "x"], "runwatchd: error: unknown command 'uplod' (see `runwatchd --help`); did "
                     "you mean 'upload'?"),
    (["chek-config"], "runwatchd: error: unknown command 'chek-config' (see `runwatchd "
                      "--help`); did you mean 'check-config'?"),
    (["frobnicate"], "runwatchd: error: unknown command 'frobnicate' (see `runwatchd --help`)"),
    (["completion", "bsh"], "runwatchd completion: error: argument SHELL: invalid choice: 'bsh' "
                            "(choose from 'bash', 'zsh', 'fish'); did you mean 'bash'?"),
])
def test_did_you_mean(argv: list[str], expected: str) -> None:
    """A mistyped command or choice names the closest one, when one is close."""
    assert expected == usage_error(argv)


def every_parser() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    parser = build_parser()
    yield "runwatchd", parser
    for cmd in spec.COMMANDS:
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit):
            parser.parse_args([cmd.name, "--help"])
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert subparsers.choices is not None
    yield from ((f"runwatchd {name}", sp) for name, sp in subparsers.choices.items())


def test_every_argument_has_help_and_every_command_an_example() -> None:
    """No positional or option without help text; every --help ends with examples."""
    missing = [f"{name} {a.dest}" for name, p in every_parser() for a in p._actions
               if not a.help and a.dest != "command"]
    no_example = [name for name, p in every_parser()
                  if "examples:\n  runwatchd " not in p.format_help()]
    assert ([], []) == (missing, no_example)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, faults=FAST_FAULTS) as emu:
        yield emu


@pytest.mark.parametrize(("argv", "extra_env", "info_lines"), [
    ([], {}, True),
    (["-q"], {}, False),
    (["--quiet"], {"RUNWATCHD_VERBOSE": "1"}, False),
    ([], {"RUNWATCHD_QUIET": "1"}, False),
])
def test_quiet_keeps_warnings_and_errors_only(tmp_path: Path, emulator: Emulator,
                                              argv: list[str], extra_env: dict[str, str],
                                              info_lines: bool) -> None:
    """`scan` logs each file at INFO; -q (or RUNWATCHD_QUIET=1) leaves stderr to warnings and
    errors, also after the daemon has set its logging up from the config."""
    config = tmp_path / "runwatchd.toml"
    config.write_text(f'[defaults]\nsettle_seconds = 0.1\n[daemon]\nlog_format = "json"\n'
                      f'[[folder]]\npath = "{tmp_path / "in"}"\n')
    make_media(tmp_path / "in", "a.jpg", 2000)
    env = cli_env(tmp_path, emulator.url, SECRET, **extra_env)
    proc = run_cli(["scan", "-c", str(config), *argv], env, tmp_path)
    assert (0, info_lines) == (proc.returncode, '"level": "INFO"' in proc.stderr)
