"""The small commands: init, check-config, emulator, and the --help text."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cli_helpers import cli_env, run_cli

from runwatchd.cli import main as cli
from runwatchd.config import starter as config_text

HELP_FILE = Path(__file__).parent.parent / "data" / "help.txt"
HELP_COLUMNS = "100"


def test_init_writes_a_config_that_checks_clean(tmp_path: Path) -> None:
    """init writes the starter config; check-config accepts it (with a secret set), exit 0."""
    env = cli_env(tmp_path, secret="key_x")
    made = run_cli(["init", "cfg/runwatchd.toml"], env, tmp_path)
    checked = run_cli(["check-config", "-c", "cfg/runwatchd.toml"], env, tmp_path)
    assert (0, config_text.starter_config(), 0) == (
        made.returncode, (tmp_path / "cfg" / "runwatchd.toml").read_text(), checked.returncode)
    assert ("", True) == (checked.stderr, "API secret: from RUNWAYML_API_SECRET" in checked.stdout)


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """init never overwrites: one line, exit 1, the existing file untouched."""
    existing = tmp_path / "runwatchd.toml"
    existing.write_text("# mine\n")
    proc = run_cli(["init"], cli_env(tmp_path), tmp_path)
    assert (1, [f"runwatchd: {existing.name} exists; not overwriting it"], "# mine\n") == (
        proc.returncode, proc.stderr.splitlines(), existing.read_text())


def test_init_unwritable_place_is_one_line(tmp_path: Path) -> None:
    """init into a place that cannot hold a file: one line, no traceback, exit 1."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli(["init", str(blocker / "runwatchd.toml")], cli_env(tmp_path), tmp_path)
    assert (1, 1, True) == (proc.returncode, len(proc.stderr.splitlines()),
                            proc.stderr.startswith(f"runwatchd: cannot write {blocker}/"))


def test_check_config_lists_every_problem_exit_78(tmp_path: Path) -> None:
    """check-config prints every problem with its key path, one per line, and exits 78."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[runway]\nconcurrency = "x"\nbogus = 1\n[defaults]\nsettle_seconds = true\n'
                   '[[folder]]\nrecursive = 3\n')
    proc = run_cli(["check-config", "-c", str(bad)], cli_env(tmp_path, secret="k"), tmp_path)
    problems = [line.removeprefix(f"runwatchd: config error: {bad}: ")
                for line in proc.stderr.splitlines()]
    assert (78, "", [
        "runway.bogus: unknown key (known: base_url, api_secret_file, concurrency, state_dir, "
        "timeout)",
        "runway.concurrency: expected an integer, got 'x'",
        "defaults.settle_seconds: expected a number, got true (a bool is not a number)",
        "folder[0].recursive: expected true or false, got 3",
        "folder[0].path: required",
    ]) == (proc.returncode, proc.stdout, problems)


def test_check_config_without_secret_exit_78(tmp_path: Path) -> None:
    """A valid file but no API secret anywhere (what `run` would die of) is a problem: 78."""
    good = tmp_path / "good.toml"
    good.write_text(f'[[folder]]\npath = "{tmp_path}"\n')
    proc = run_cli(["check-config", "-c", str(good)], cli_env(tmp_path), tmp_path)
    assert (78, True, True) == (
        proc.returncode, f"folder {tmp_path}" in proc.stdout,
        proc.stderr.startswith(f"runwatchd: config error: {good}: no Runway API secret found"))


def test_check_config_missing_file_exit_78(tmp_path: Path) -> None:
    """check-config -c with a file that does not exist: one line, exit 78."""
    proc = run_cli(["check-config", "-c", "nope.toml"], cli_env(tmp_path, secret="k"), tmp_path)
    assert (78, ["runwatchd: config error: nope.toml: cannot read (No such file or directory)"]
            ) == (proc.returncode, proc.stderr.splitlines())


def read_line(stream: io.BufferedReader, timeout: float) -> str:
    """One line from a child's pipe, or "" if none came within `timeout`."""
    line = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                break
            line += chunk
    return line.decode()


def test_emulator_command_serves_then_stops_on_sigterm(tmp_path: Path) -> None:
    """`runwatchd emulator --port 0` prints its URL (not a key taken from the environment),
    answers the API with that key, and exits 0 on SIGTERM."""
    secret = "key_from_env_Qm7Vb2"
    proc = subprocess.Popen([sys.executable, "-m", "runwatchd", "emulator", "--port", "0"],
                            env=cli_env(tmp_path, secret=secret), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout, timeout=20)
        found = re.match(r"runwatchd emulator listening on (http://127\.0\.0\.1:\d+) "
                         r"\(API key: the value of \$RUNWAYML_API_SECRET\)\n", line)
        assert found, line
        reply = httpx.get(found.group(1) + "/v1/organization", timeout=5,
                          headers={"Authorization": f"Bearer {secret}",
                                   "X-Runway-Version": "2024-11-06"})
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert (200, 0, b"") == (reply.status_code, code, err)


def test_emulator_command_busy_port_is_one_line(tmp_path: Path) -> None:
    """A port already taken gives one line and exit 1, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(["emulator", "--port", str(port)], cli_env(tmp_path), tmp_path)
    assert (1, [f"runwatchd: emulator: cannot listen on 127.0.0.1:{port} (Address already in "
                "use)"]) == (proc.returncode, proc.stderr.splitlines())


@pytest.mark.parametrize(("faults", "expected"), [
    ('{"error_rate": 3}', "runwatchd: --faults: invalid faults: error_rate: expected a number "
                          "between 0 and 1, got 3"),
    ('{"eror_rate": 0.1}', "runwatchd: --faults: unknown fault keys: eror_rate (known: "),
    ("[1]", "runwatchd: --faults: expected a JSON object"),
    ("{", "runwatchd: --faults: Expecting property name enclosed in double quotes"),
])
def test_emulator_bad_faults_usage_error(tmp_path: Path, faults: str, expected: str) -> None:
    """Invalid --faults is a usage error (exit 2) with one line saying what is wrong."""
    proc = run_cli(["emulator", "--port", "0", "--faults", faults], cli_env(tmp_path), tmp_path)
    lines = proc.stderr.splitlines()
    assert (2, 1, True) == (proc.returncode, len(lines), lines[0].startswith(expected))


def all_help() -> str:
    """`runwatchd --help` and every `runwatchd COMMAND --help`, as a terminal 100 wide shows."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sections = []
    for argv in ([], *([name] for name in subparsers.choices)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
            cli.main([*argv, "--help"])
        assert 0 == info.value.code
        sections.append(f"$ runwatchd {' '.join([*argv, '--help'])}\n{out.getvalue()}")
    return "\n".join(sections)


def test_help_matches_saved_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The --help of every command matches tests/data/help.txt (a change to the CLI contract
    shows up in review).

    After an intended change, regenerate it with
        RUNWATCHD_WRITE_HELP=1 .venv/bin/pytest tests/cli/test_cli_misc.py -k help
    and review the diff. argparse's layout differs between Python minor versions; the file
    records the version it was made with, and another version skips the comparison.
    """
    monkeypatch.setenv("COLUMNS", HELP_COLUMNS)
    version = "python {}.{}".format(*sys.version_info[:2])
    actual = f"# {version}; regenerate: see test_help_matches_saved_copy\n\n{all_help()}"
    if os.environ.get("RUNWATCHD_WRITE_HELP"):
        HELP_FILE.parent.mkdir(exist_ok=True)
        HELP_FILE.write_text(actual)
    saved = HELP_FILE.read_text()
    if not saved.startswith(f"# {version};"):
        pytest.skip(f"help.txt was made with {saved.split(';')[0][2:]}, this is {version}")
    assert saved == actual
