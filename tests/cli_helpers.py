"""Running `python -m runwatchd` in a subprocess against an in-process emulator.

The child gets a clean environment: no RUNWAYML_*/RUNWATCHD_* of the developer's shell, HOME and
XDG directories inside the test's tmp_path (so no user config or state is read or written), and
RUNWATCHD_RETRY_BASE_DELAY so retries against a faulty emulator take milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

RETRY_BASE_DELAY = "0.01"
FAST_FAULTS = {"retry_after": 0.05}  # the emulator's Retry-After on injected 429s, in seconds

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def cli_env(tmp_path: Path, base_url: str | None = None, secret: str | None = None,
            **extra: str) -> dict[str, str]:
    """Environment for a CLI child: isolated from the developer's shell and home."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNWAYML_", "RUNWATCHD_")) and k not in (
               "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET",
               "COLUMNS", "LINES")}
    home = tmp_path / "home"
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_STATE_HOME=str(home / ".state"), RUNWATCHD_RETRY_BASE_DELAY=RETRY_BASE_DELAY,
               PYTHONDONTWRITEBYTECODE="1")
    if base_url is not None:
        env["RUNWAYML_BASE_URL"] = base_url
    if secret is not None:
        env["RUNWAYML_API_SECRET"] = secret
    env.update(extra)
    return env


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path, *, timeout: float = 60.0,
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m runwatchd ARGS`, captured as text (no terminal: stdin is /dev/null)."""
    return subprocess.run([sys.executable, "-m", "runwatchd", *args], env=dict(env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)


def without_root_file_access() -> Callable[[], None] | None:
    """A preexec_fn that makes root obey file permissions (drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from the bounding set, so the exec'd child never has them); None when
    not root (permissions apply anyway). Raises OSError in the child if it cannot drop them."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return drop


def make_media(directory: Path, name: str, size: int, seed: int = 0) -> Path:
    """A file of `size` pseudo-random bytes (distinct per name and seed)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    block = (name.encode() + seed.to_bytes(4, "big")) * (size // len(name) + 8)
    path.write_bytes(os.urandom(16) + block[: size - 16])
    return path
