"""The API secret never appears in output, logs, sidecars or the state directory.

Every command runs with a distinctive secret, --verbose (debug logs and tracebacks), and the
emulator injecting every fault it knows; then stdout, stderr and every file the run left under
the test's directory (sidecars, journal, status file, config) are searched for the secret.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAST_FAULTS, cli_env, make_media, run_cli

from runwatchd.emulator import Emulator

SECRET = "key_Zx81SecretSentinel_4c0ffee9d2"
FAULTS = {**FAST_FAULTS, "error_rate": 0.2, "drop_rate": 0.1, "drop_after_rate": 0.05,
          "bad_json_rate": 0.05, "rate_limit_every": 7, "rate_limit_burst": 1, "seed": 5}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, faults=FAULTS, task_seconds=0.2) as emu:
        yield emu


def leaks(tmp_path: Path, *texts: str) -> list[str]:
    """Where the secret (or a long piece of it) shows up: in `texts`, or in any file under
    tmp_path, read as bytes."""
    pieces = [SECRET, SECRET[4:20], SECRET[-16:]]
    found = [f"output #{i}" for i, text in enumerate(texts) if any(p in text for p in pieces)]
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(p.encode() in data for p in pieces):
                found.append(str(path.relative_to(tmp_path)))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upload_with_faults_leaks_nothing(tmp_path: Path, emulator: Emulator) -> None:
    """`upload --verbose` (text and JSON logs) through every fault: no secret anywhere."""
    files = [make_media(tmp_path / "media", f"s{i}.jpg", 3000) for i in range(8)]
    env = cli_env(tmp_path, emulator.url, SECRET)
    text = run_cli(["--verbose", "upload", *map(str, files)], env, tmp_path)
    as_json = run_cli(["--verbose", "--log-format", "json", "upload", "--json",
                       *map(str, files)], env, tmp_path)
    injected = emulator.stats()["faults_injected"]
    assert (0, 0) == (text.returncode, as_json.returncode), text.stderr + as_json.stderr
    assert all(injected.get(kind, 0) > 0 for kind in ("error", "drop", "rate_limit")), injected
    assert [] == leaks(tmp_path, text.stdout, text.stderr, as_json.stdout, as_json.stderr)


def test_scan_with_faults_leaks_nothing_in_state_dir(tmp_path: Path, emulator: Emulator) -> None:
    """`scan --verbose` writes a journal and a status file: neither holds the secret."""
    folder = tmp_path / "hot"
    for i in range(4):
        make_media(folder, f"clip{i}.mp4", 4000)
    # A milder mix than the upload test's: scan has no later pass, and this test is about
    # secrets, so every file must get through its retry budget (it did not, 1 run in 8).
    emulator.set_faults(error_rate=0.1, drop_rate=0.05, drop_after_rate=0.0, bad_json_rate=0.02)
    env = cli_env(tmp_path, emulator.url, SECRET)
    proc = run_cli(["--verbose", "scan", str(folder)], env, tmp_path, timeout=90)
    state = tmp_path / "home" / ".state" / "runwatchd"
    assert (0, True) == (proc.returncode, any(state.iterdir())), proc.stderr
    assert [] == leaks(tmp_path, proc.stdout, proc.stderr)


def test_failures_and_tracebacks_leak_nothing(tmp_path: Path, emulator: Emulator) -> None:
    """A rejected key, an unreachable API (a --verbose traceback of the chained httpx error),
    and check-config: the secret is never shown."""
    media = make_media(tmp_path, "a.png", 2000)
    wrong = run_cli(["--verbose", "upload", str(media)],
                    cli_env(tmp_path, emulator.url, SECRET + "x"), tmp_path)
    unreachable = run_cli(["--verbose", "upload", str(media)],
                          cli_env(tmp_path, f"http://127.0.0.1:{free_port()}", SECRET,
                                  RUNWATCHD_RETRY_BASE_DELAY="0"), tmp_path)
    config = tmp_path / "runwatchd.toml"
    config.write_text(f'[[folder]]\npath = "{tmp_path / "hot"}"\n')
    check = run_cli(["check-config", "-c", str(config)], cli_env(tmp_path, emulator.url, SECRET),
                    tmp_path)
    assert (1, 1, 0) == (wrong.returncode, unreachable.returncode, check.returncode)
    assert (True, True) == ("Traceback" in unreachable.stderr,
                            "API secret: from RUNWAYML_API_SECRET" in check.stdout)
    assert [] == leaks(tmp_path, wrong.stdout, wrong.stderr, unreachable.stdout,
                       unreachable.stderr, check.stdout, check.stderr)
