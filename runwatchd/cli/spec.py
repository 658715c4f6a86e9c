"""The command line as data: every command, option, help text and example, in one table.

The argparse parser (cli/parser.py), the shell completions (cli/completion.py) and the man page
(cli/manpage.py) are all built from this table, so they cannot drift apart. Importing it costs
nothing beyond the standard library: `runwatchd --help` must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROG = "runwatchd"
SHELLS = ("bash", "zsh", "fish")
LOG_FORMATS = ("text", "json")
# Exit codes as the man page and --help state them; cli/common.py holds the constants.
EXIT_STATUS = (("0", "ok"), ("1", "some files failed"), ("2", "usage error"),
               ("3", "status: no daemon holds the store (LSB \"not running\")"),
               ("78", "bad configuration (EX_CONFIG)"))


@dataclass(frozen=True)
class Opt:
    """One option (flags start with '-') or positional argument (one bare name).

    `value` says what the option's value is, for the completions: "file", "dir", "choice"
    (from `choices`), "any" (free text), or "" for a flag that takes no value."""

    flags: tuple[str, ...]
    help: str
    value: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    nargs: str | None = None
    type: Callable[[str], object] | None = None
    default: object = None
    repeat: bool = False
    dest: str | None = None

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        return self.value != ""

    @property
    def shown(self) -> str:
        """The value's name in usage and the man page."""
        return self.metavar or (self.flags[0] if self.positional else self.flags[-1].lstrip("-")
                                ).upper().replace("-", "_")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Opt, ...] = ()
    examples: tuple[str, ...] = ()
    description: str = ""
    config: bool = False  # takes -c/--config


CONFIG = Opt(("-c", "--config"), "config file (TOML; default: $RUNWATCHD_CONFIG, "
             "./runwatchd.toml, ~/.config/runwatchd/config.toml, /etc/runwatchd/config.toml)",
             value="file", metavar="CONFIG", type=Path)

GLOBAL_OPTIONS = (
    Opt(("-v", "--verbose"), "debug logs and tracebacks (env RUNWATCHD_VERBOSE=1)"),
    Opt(("-q", "--quiet"), "warnings and errors only (env RUNWATCHD_QUIET=1)"),
    Opt(("--log-format",), "log line format (env RUNWATCHD_LOG_FORMAT; default: "
        "[daemon] log_format, else text)", value="choice", choices=LOG_FORMATS,
        metavar="{text,json}"),
)

DESCRIPTION = """\
Hot-folder daemon for Runway: uploads what lands in watched folders, writes
<file>.runway.json sidecars, and runs per-folder generation rules."""

ENVIRONMENT = (
    ("RUNWATCHD_CONFIG", "the config file when -c is not given"),
    ("RUNWATCHD_VERBOSE", "1: as -v"),
    ("RUNWATCHD_QUIET", "1: as -q"),
    ("RUNWATCHD_LOG_FORMAT", "text or json: as --log-format"),
    ("RUNWAYML_API_SECRET", "the Runway API key (else [runway] api_secret_file, else the "
                            "systemd credential runway_api_secret)"),
    ("RUNWAYML_BASE_URL", "the Runway API (else [runway] base_url)"),
    ("STATE_DIRECTORY", "where the journal lives when [runway] state_dir is not set"),
    ("RUNWATCHD_STORE_URL", "the store (else [store] url, else SQLite in the state directory)"),
    ("NO_COLOR", "no colour in log lines on a terminal"),
)
PRECEDENCE = "command line > environment > config file > defaults"

COMMANDS = (
    Command("run", "the daemon, in the foreground", config=True, options=(
        Opt(("--watch",), "watch DIR (repeatable; works without a config file)", value="dir",
            metavar="DIR", type=Path, repeat=True, default=[]),
    ), examples=(
        "runwatchd run --watch /srv/hot",
        "runwatchd run -c /etc/runwatchd/config.toml",
    ), description="Watch the configured folders until stopped (SIGTERM or Ctrl-C); SIGHUP "
                   "reloads the config. systemd runs exactly this."),
    Command("scan", "process what is there now, then exit", config=True, options=(
        Opt(("dirs",), "folder to process, added to the config's (default: the config's "
            "folders)", value="dir", metavar="DIR", nargs="*", type=Path),
    ), examples=(
        'runwatchd scan -c render-farm.toml "/mnt/farm/renders/$JOB"',
        "runwatchd scan ~/Runway/inbox",
    ), description="Process the files there are now, wait until every one is finished, and "
                   "exit 0 only if all succeeded (1 if some failed)."),
    Command("upload", "upload files now, print their runway:// URIs", config=True, options=(
        Opt(("files",), "media file to upload", value="file", metavar="FILE", nargs="+",
            type=Path),
        Opt(("--json",), "print one JSON document"),
        Opt(("-j", "--jobs"), "uploads in parallel (default: [runway] concurrency, 4)",
            value="any", metavar="JOBS", type=int),
    ), examples=(
        "runwatchd upload shot.jpg",
        "runwatchd upload --json -j 8 renders/*.png > uris.json",
    ), description="Upload FILEs now, write their sidecars, and print one runway:// URI per "
                   "line in the order given (or one --json document)."),
    Command("status", "what the daemon knows", config=True, options=(
        Opt(("--json",), "print one JSON document"),
        Opt(("--watch",), "refresh every 2 s until Ctrl-C (in place on a terminal)",
            dest="follow"),
    ), examples=(
        "runwatchd status",
        "runwatchd status --watch -c /etc/runwatchd/config.toml",
        "runwatchd status --json | jq .files",
    ), description="The state directory and store it reads, counts per state, files in flight "
                   "and recent failures; works while the daemon runs. Exits 0 when a daemon "
                   "holds the store, 3 when none does (as an init script's status). A service "
                   "config (/etc/runwatchd/NAME.toml) is read where its unit keeps its state, "
                   "/var/lib/runwatchd[/NAME]."),
    Command("check-config", "validate and explain the configuration", config=True, options=(
        Opt(("--rules",), "check this one rules file alone (no config is read)", value="file",
            metavar="PATH", type=Path),
    ), examples=(
        "runwatchd check-config -c /etc/runwatchd/config.toml",
        "runwatchd check-config --rules /srv/hot/clips/runwatchd.rules.toml",
    ), description="Explain the configuration; list every problem with its key path and exit "
                   "78 if there is one (an API secret that cannot be found, no folders, and "
                   "every runwatchd.rules.toml under the folders included, with line and column "
                   "as the daemon logs them). --rules checks one rules file without a config; "
                   "its output_dir is then checked against its own folder only."),
    Command("init", "write a commented starter config, or a service's files", options=(
        Opt(("path",), "where to write the config (default: ./runwatchd.toml)", value="file",
            metavar="PATH", nargs="?", type=Path),
        Opt(("--service",), "write the systemd units, the sysusers.d file and "
            "/etc/runwatchd/config.toml instead"),
        Opt(("--root",), "with --service: write below DIR instead of / (a staging root)",
            value="dir", metavar="DIR", type=Path),
    ), examples=(
        "runwatchd init ~/.config/runwatchd/config.toml",
        "sudo /opt/runwatchd/bin/runwatchd init --service",
    ), description="Write a commented starter config (never overwrites a file). With "
                   "--service: the systemd units, the sysusers.d file and a starter config "
                   "where systemd expects them, then print the commands that finish the "
                   "install."),
    Command("retry", "submit a file's generation again, on purpose", config=True, options=(
        Opt(("files",), "file whose generation to submit again", value="file",
            metavar="FILE", nargs="+", type=Path),
    ), examples=(
        "runwatchd retry /srv/hot/stills/shot.jpg",
    ), description="Submit a file's generation again after it ended FAILED or needs "
                   "attention (check the Runway dashboard first: this spends credits)."),
    Command("emulator", "the built-in Runway API emulator", options=(
        Opt(("--host",), "address to listen on (default: 127.0.0.1)", value="any",
            default="127.0.0.1"),
        Opt(("--port",), "port to listen on; 0 picks a free one (default: 8765)", value="any",
            type=int, default=8765),
        Opt(("--api-key",), "key the emulator accepts (default: $RUNWAYML_API_SECRET, else "
            "'emulator-key')", value="any"),
        Opt(("--faults",), 'fault injection as JSON, e.g. \'{"error_rate": 0.3}\'',
            value="any"),
        Opt(("--task-seconds",), "how long a generation task runs (default: 2.0)",
            value="any", type=float, default=2.0),
        Opt(("--storage-dir",), "keep uploads and outputs in DIR (default: a temporary one)",
            value="dir", metavar="DIR", type=Path),
    ), examples=(
        "runwatchd emulator --port 8765",
        "runwatchd emulator --faults '{\"error_rate\": 0.3, \"retry_after\": 0.05}'",
    ), description="A real HTTP server speaking Runway's wire protocol, for tests and demos."),
    Command("demo", "the whole flow offline, on the emulator", options=(
        Opt(("--keep",), "keep the demo folder afterwards"),
    ), examples=("runwatchd demo",)),
    Command("completion", "print a shell completion script", options=(
        Opt(("shell",), "bash, zsh or fish", value="choice", choices=SHELLS, metavar="SHELL"),
    ), examples=(
        "runwatchd completion bash > /etc/bash_completion.d/runwatchd",
        "runwatchd completion zsh > \"${fpath[1]}/_runwatchd\"",
        "runwatchd completion fish > ~/.config/fish/completions/runwatchd.fish",
    ), description="Print the completion script for SHELL on stdout."),
    Command("man", "print the man page (roff)", examples=(
        "runwatchd man | man -l -",
        "runwatchd man > /usr/local/share/man/man1/runwatchd.1",
    ), description="Print the manual page, runwatchd(1), as roff on stdout."),
)


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


def options_of(cmd: Command) -> tuple[Opt, ...]:
    """The command's own options, -c/--config first where it takes one."""
    return ((CONFIG,) if cmd.config else ()) + cmd.options
