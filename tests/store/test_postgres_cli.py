"""The commands on a PostgreSQL store: `scan` records its files there (nothing in the state
directory), chosen by $RUNWATCHD_STORE_URL; check-config names it without the password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAST_FAULTS, cli_env, make_media, run_cli
from postgres_helpers import PostgresServer

from runwatchd.emulator import Emulator
from runwatchd.store import open_store

SECRET = "key_postgres_cli_test"
PASSWORD = "pw-never-shown"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator for the command."""
    with Emulator(api_secret=SECRET, faults=FAST_FAULTS) as emu:
        yield emu


def test_scan_records_its_files_in_the_postgres_store(
        tmp_path: Path, emulator: Emulator, postgres_server: PostgresServer,
        postgres_db: str) -> None:
    """`scan` with $RUNWATCHD_STORE_URL uploads into rows of that database, no SQLite journal."""
    config = tmp_path / "runwatchd.toml"
    config.write_text(f'[runway]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[defaults]\nsettle_seconds = 0.1\n[[folder]]\npath = "{tmp_path / "in"}"\n')
    make_media(tmp_path / "in", "a.jpg", 2000)
    make_media(tmp_path / "in", "b.png", 3000)
    url = postgres_server.url_of(postgres_db, password=PASSWORD)
    env = cli_env(tmp_path, emulator.url, SECRET, RUNWATCHD_STORE_URL=url)
    proc = run_cli(["scan", "-c", str(config)], env, tmp_path)
    assert 0 == proc.returncode, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    store = open_store(tmp_path, url)
    try:
        assert {"uploaded": 2} == store.counts()
    finally:
        store.close()
    assert not (tmp_path / "state" / "journal.sqlite3").exists()
    check = run_cli(["check-config", "-c", str(config)], env, tmp_path)
    assert 0 == check.returncode, check.stderr
    assert PASSWORD not in check.stdout + check.stderr
    assert f"store: PostgreSQL postgresql://postgres:***@/{postgres_db}" in check.stdout
