"""`runwatchd upload FILE...` end to end: a subprocess against an in-process emulator.

Retries are fast because the child runs with RUNWATCHD_RETRY_BASE_DELAY (see cli_helpers) and the
emulator's injected 429s carry a Retry-After of 0.05 s.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAST_FAULTS, cli_env, make_media, run_cli, without_root_file_access
from helpers import wait_for

from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar

SECRET = "key_cli_upload_test"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, faults=FAST_FAULTS) as emu:
        yield emu


@pytest.fixture
def env(tmp_path: Path, emulator: Emulator) -> dict[str, str]:
    return cli_env(tmp_path, emulator.url, SECRET)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return proc.stderr.splitlines()


def test_fifty_files_through_503s_and_429s(tmp_path: Path, env: dict[str, str],
                                           emulator: Emulator) -> None:
    """50 files through 30% 503s and some 429s: 50 URIs in order, 50 correct sidecars, and the
    emulator holds each URI with the file's name, size and sha256."""
    emulator.set_faults(error_rate=0.3, rate_limit_burst=2, rate_limit_every=29, seed=11)
    files = [make_media(tmp_path / "in", f"clip{i:02d}.jpg", 600 + 97 * i) for i in range(50)]
    proc = run_cli(["upload", *map(str, files)], env, tmp_path)
    assert (0, "") == (proc.returncode, proc.stderr)
    objects = emulator.objects()
    uris = []
    for f in files:
        data = sidecar.read_sidecar(f)
        assert data is not None, f.name
        st = f.stat()
        assert {"name": f.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "sha256": sha256_of(f)} == data["file"]
        assert {"filename": f.name, "size": st.st_size, "sha256": sha256_of(f)} == objects.get(
            data["runway_uri"])
        uris.append(data["runway_uri"])
    assert (uris, 50) == (proc.stdout.splitlines(), len(set(uris)))
    injected = emulator.stats()["faults_injected"]
    assert (True, True) == (injected.get("error", 0) >= 30, injected.get("rate_limit", 0) >= 2)


@pytest.mark.parametrize(("name", "expected"), [
    ("tiny.jpg", "tiny.jpg: 300 bytes is below Runway's minimum of 512 bytes"),
    ("shot.gif", "shot.gif: unsupported file type '.gif' (supported: .jpg,"),
    ("folder.jpg", "folder.jpg: not a regular file (directory)"),
    ("locked.jpg", "locked.jpg: cannot read (Permission denied)"),
    ("missing.jpg", "missing.jpg: no such file"),
])
def test_bad_file_one_line_nonzero_nothing_uploaded(tmp_path: Path, env: dict[str, str],
                                                    emulator: Emulator, name: str,
                                                    expected: str) -> None:
    """A too-small file, a .gif, a directory, an unreadable and a missing file each give one
    clear line, exit 1, and not a single request reaches the API."""
    target = tmp_path / name
    if name == "tiny.jpg":
        make_media(tmp_path, name, 300)
    elif name == "shot.gif":
        make_media(tmp_path, name, 4000)
    elif name == "folder.jpg":
        target.mkdir()
    elif name == "locked.jpg":
        make_media(tmp_path, name, 4000).chmod(0)
    try:
        proc = run_cli(["upload", str(target)], env, tmp_path,
                       preexec_fn=without_root_file_access())
    except subprocess.SubprocessError as e:  # root without CAP_SETPCAP cannot drop its powers
        pytest.skip(f"cannot make a file unreadable for root here: {e}")
    lines = stderr_lines(proc)
    assert (1, "", 1, True) == (proc.returncode, proc.stdout, len(lines),
                                lines[0].startswith(f"runwatchd: {expected}"))
    assert (0, {}) == (emulator.stats()["api_calls_total"], emulator.objects())
    assert not sidecar.sidecar_path(target).exists()


def test_bad_files_skipped_good_ones_uploaded(tmp_path: Path, env: dict[str, str],
                                              emulator: Emulator) -> None:
    """In a mixed batch the good files are uploaded, each bad one gets its line, exit is 1."""
    good = make_media(tmp_path, "good.png", 2000)
    tiny = make_media(tmp_path, "tiny.mp4", 100)
    proc = run_cli(["upload", str(tiny), str(good)], env, tmp_path)
    uri = sidecar.read_sidecar(good)["runway_uri"]  # type: ignore[index]
    assert (1, [uri], ["runwatchd: tiny.mp4: 100 bytes is below Runway's minimum of 512 bytes"]
            ) == (proc.returncode, proc.stdout.splitlines(), stderr_lines(proc))
    assert ["good.png"] == [o["filename"] for o in emulator.objects().values()]


@pytest.mark.parametrize("verbose", [False, True])
def test_wrong_key_one_line_no_traceback(tmp_path: Path, emulator: Emulator,
                                         verbose: bool) -> None:
    """A wrong key gives one line saying the key was rejected (no traceback, even with
    --verbose), exit 1, and no sidecar."""
    media = make_media(tmp_path, "shot.jpg", 2000)
    env = cli_env(tmp_path, emulator.url, "key_not_the_right_one")
    proc = run_cli([*(["--verbose"] if verbose else []), "upload", str(media)], env, tmp_path)
    rejected = [line for line in stderr_lines(proc) if "API key was rejected" in line]
    assert (1, "", 1, False, False) == (
        proc.returncode, proc.stdout, len(rejected), "Traceback" in proc.stderr,
        sidecar.sidecar_path(media).exists())
    if not verbose:
        assert [rejected[0]] == stderr_lines(proc)
    assert (rejected[0].startswith("runwatchd: your API key was rejected (401"), 0) == (
        True, emulator.stats()["uploads_created"])


def test_no_separate_key_check(tmp_path: Path, env: dict[str, str], emulator: Emulator) -> None:
    """`upload` proves the key with its first slot request: no GET /v1/organization first."""
    media = make_media(tmp_path, "shot.jpg", 2000)
    proc = run_cli(["upload", str(media)], env, tmp_path)
    assert (0, {}) == (proc.returncode,
                       emulator.stats()["requests"].get("GET /v1/organization", {}))


def test_wrong_key_with_many_files_is_still_one_line(tmp_path: Path, emulator: Emulator) -> None:
    """Eight files meeting a 401 at once still give one line, not one per file."""
    files = [make_media(tmp_path, f"shot{i}.jpg", 2000, seed=i) for i in range(8)]
    env = cli_env(tmp_path, emulator.url, "key_not_the_right_one")
    proc = run_cli(["upload", "-j", "4", *map(str, files)], env, tmp_path)
    assert (1, 1) == (proc.returncode, len(stderr_lines(proc)))
    assert stderr_lines(proc)[0].startswith("runwatchd: your API key was rejected (401")


def test_json_output(tmp_path: Path, env: dict[str, str], emulator: Emulator) -> None:
    """--json prints one document: each upload's sidecar with path, and each failure."""
    media = make_media(tmp_path, "take.mov", 3000)
    bad = make_media(tmp_path, "notes.txt", 3000)
    proc = run_cli(["upload", "--json", str(media), str(media), str(bad)], env, tmp_path)
    doc = json.loads(proc.stdout)
    assert (1, 1, sidecar.read_sidecar(media)) == (proc.returncode, len(doc["uploads"]),
                                                   {k: v for k, v in doc["uploads"][0].items()
                                                    if k not in ("path", "sidecar")})
    assert ((str(media), str(sidecar.sidecar_path(media))),
            [{"path": str(bad), "error": "notes.txt: unsupported file type '.txt' (supported: "
              ".jpg, .jpeg, .png, .webp, .mp4, .mov, .webm, .mp3, .wav, .flac, .m4a, .aac)"}]
            ) == ((doc["uploads"][0]["path"], doc["uploads"][0]["sidecar"]), doc["failures"])
    assert 1 == emulator.stats()["uploads_completed"]  # the file named twice went up once


def test_without_terminal_only_uris(tmp_path: Path, env: dict[str, str]) -> None:
    """Without a terminal, stdout holds only the URIs, one per line, and stderr stays empty."""
    files = [make_media(tmp_path, f"s{i}.webp", 5000) for i in range(3)]
    proc = run_cli(["upload", *map(str, files)], env, tmp_path)
    uris = [sidecar.read_sidecar(f)["runway_uri"] for f in files]  # type: ignore[index]
    assert (0, "".join(u + "\n" for u in uris), "") == (proc.returncode, proc.stdout, proc.stderr)


def test_unwritable_sidecar_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    """A file in a read-only folder is uploaded, but the missing sidecar is a failure: one
    line that names the URI, exit 1."""
    folder = tmp_path / "ro"
    media = make_media(folder, "clip.mp4", 4000)
    folder.chmod(0o555)
    try:
        proc = run_cli(["upload", str(media)], env, tmp_path,
                       preexec_fn=without_root_file_access())
    except subprocess.SubprocessError as e:
        pytest.skip(f"cannot make a folder read-only for root here: {e}")
    finally:
        folder.chmod(0o755)
    lines = stderr_lines(proc)
    assert (1, "", 1) == (proc.returncode, proc.stdout, len(lines))
    assert lines[0].startswith("runwatchd: clip.mp4: uploaded as runway://")
    assert lines[0].endswith("but its sidecar cannot be written (Permission denied)")


def run_on_terminal(args: list[str], env: dict[str, str], cwd: Path,
                    columns: int) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal `columns` wide; (code, stdout, terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "runwatchd", *args], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal has closed it
                    break
                if not chunk:
                    break
                screen += chunk
        out, _ = proc.communicate(timeout=10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    return proc.returncode, out.decode(), screen.decode()


def test_progress_bar_on_terminal(tmp_path: Path, env: dict[str, str]) -> None:
    """On a terminal the bar is drawn on stderr, fits its width, ends at 100%; stdout still
    holds only the URIs."""
    files = [make_media(tmp_path, f"still{i}.jpg", 300_000) for i in range(3)]
    code, out, screen = run_on_terminal(["upload", *map(str, files)], env, tmp_path, columns=72)
    uris = [sidecar.read_sidecar(f)["runway_uri"] for f in files]  # type: ignore[index]
    drawn = [part for line in screen.split("\n") for part in line.split("\r") if part.strip()]
    assert (0, uris) == (code, out.splitlines())
    assert drawn and all(len(part) <= 71 for part in drawn), drawn
    assert re.match(r"3/3 files 100% \[#{10,}\]  878\.9/878\.9 KiB  ", drawn[-1]), drawn[-1]


def test_interrupt_exits_130_without_waiting(tmp_path: Path, env: dict[str, str],
                                             emulator: Emulator) -> None:
    """Ctrl-C during a stalled upload exits 130 at once with one line, no traceback."""
    emulator.set_faults(delay=30.0, scope=["storage"])
    media = make_media(tmp_path, "long.mp4", 50_000)
    proc = subprocess.Popen([sys.executable, "-m", "runwatchd", "upload", str(media)], env=env,
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: emulator.stats()["uploads_created"] >= 1, timeout=20)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (130, "", ["runwatchd: interrupted; uploads in flight were abandoned (each file with "
                      "a sidecar is done)"]) == (proc.returncode, out, err.splitlines())
    assert took < 5, took


def test_usage_and_configuration_exit_codes(tmp_path: Path, emulator: Emulator) -> None:
    """No FILE or an unknown option: 2. No secret, a bad RUNWAYML_BASE_URL or a broken config
    file: 78 with one line each, and nothing reaches the API."""
    media = make_media(tmp_path, "a.jpg", 2000)
    broken = tmp_path / "broken.toml"
    broken.write_text("[runway]\nconcurrency = 0\n")
    runs = {
        "no file": run_cli(["upload"], cli_env(tmp_path, emulator.url, SECRET), tmp_path),
        "bad option": run_cli(["upload", "--nope", str(media)],
                              cli_env(tmp_path, emulator.url, SECRET), tmp_path),
        "no secret": run_cli(["upload", str(media)], cli_env(tmp_path, emulator.url), tmp_path),
        "bad url": run_cli(["upload", str(media)], cli_env(tmp_path, "ftp://x", SECRET), tmp_path),
        "bad config": run_cli(["upload", "-c", str(broken), str(media)],
                              cli_env(tmp_path, emulator.url, SECRET), tmp_path),
    }
    codes = {name: proc.returncode for name, proc in runs.items()}
    assert {"no file": 2, "bad option": 2, "no secret": 78, "bad url": 78, "bad config": 78
            } == codes
    config_lines = [runs[n].stderr.splitlines() for n in ("no secret", "bad url", "bad config")]
    assert [1, 1, 1] == [len(lines) for lines in config_lines], config_lines
    assert (0, False) == (emulator.stats()["api_calls_total"],
                          sidecar.sidecar_path(media).exists())
