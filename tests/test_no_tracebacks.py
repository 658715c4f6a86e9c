"""No tracebacks (issue 13 item 7): a damaged journal, file names that are not UTF-8, file
names too long for a sidecar beside them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli

SECRET = "no-traceback-key"


@pytest.mark.parametrize("command", ["run", "scan", "status"])
def test_a_damaged_journal_is_one_line_and_exit_78(tmp_path: Path, command: str) -> None:
    """4 KiB of garbage as the journal: exit 78, one line naming it and how to recover."""
    state, hot = tmp_path / "state", tmp_path / "hot"
    state.mkdir()
    hot.mkdir()
    journal = state / "journal.sqlite3"
    garbage = os.urandom(4096)
    journal.write_bytes(garbage)
    config = tmp_path / "runwatchd.toml"
    config.write_text(f'[runway]\nstate_dir = "{state}"\n[[folder]]\npath = "{hot}"\n',
                      encoding="utf-8")
    env = cli_env(tmp_path, "http://127.0.0.1:9", SECRET)
    result = run_cli([command, "-c", str(config)], env, tmp_path)
    lines = result.stderr.splitlines()
    assert (78, 1) == (result.returncode, len(lines)), result.stderr
    assert f"the journal {journal} is damaged" in lines[0]
    assert f"mv {journal} {journal}.damaged" in lines[0]
    assert "sidecars beside your files remain the truth" in lines[0]
    assert garbage == journal.read_bytes()  # never reset
