"""[store] url and node: parsed, overridden by $RUNWATCHD_STORE_URL, explained by check-config
without the URL's password, and handed to open_store by the commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwatchd.cli.common import open_journal
from runwatchd.config import sources
from runwatchd.config import starter as config_text
from runwatchd.config.load import Config, StoreConfig, load_config
from runwatchd.errors import ConfigError
from runwatchd.store.sqlite import SqliteStore

PASSWORD = "pg-s3cret"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "runwatchd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_store_defaults_to_sqlite_on_this_host(tmp_path: Path) -> None:
    """Without [store]: no URL (SQLite in the state dir) and no node name (the host name)."""
    assert StoreConfig(None, None) == load(tmp_path, "").store


def test_store_keys_are_read(tmp_path: Path) -> None:
    """[store] url and node are kept as written."""
    cfg = load(tmp_path, "[store]\nurl = 'postgresql://rw@db/rw'\nnode = 'render-01'\n")
    assert StoreConfig("postgresql://rw@db/rw", "render-01") == cfg.store


@pytest.mark.parametrize(("text", "expected"), [
    (f"url = 'mysql://rw:{PASSWORD}@db/rw'",
     "store.url: expected sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST/DB, got scheme "
     "'mysql'"),
    (f"url = 'rw:{PASSWORD}@db'",
     "store.url: expected sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST/DB, got no scheme"),
    ("node = ' '", "store.node: must not be empty"),
    ("nodes = 'x'", "store.nodes: unknown key (did you mean 'node'?)"),
])
def test_bad_store_keys_are_problems_without_the_password(tmp_path: Path, text: str,
                                                          expected: str) -> None:
    """A bad [store] key is a listed problem; the message never repeats a URL's password."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"[store]\n{text}\n")
    assert [expected] == caught.value.problems
    assert PASSWORD not in str(caught.value)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    """$RUNWATCHD_STORE_URL replaces [store] url; blank means unset; a bad one is refused."""
    cfg = load(tmp_path, "[store]\nurl = 'postgresql://rw@db/rw'\n")
    env_url = "postgresql://other@db2/rw"
    assert env_url == sources.resolve_store_url(cfg, {"RUNWATCHD_STORE_URL": env_url})
    assert "postgresql://rw@db/rw" == sources.resolve_store_url(cfg, {"RUNWATCHD_STORE_URL": " "})
    with pytest.raises(ConfigError) as caught:
        sources.resolve_store_url(cfg, {"RUNWATCHD_STORE_URL": f"ftp://u:{PASSWORD}@x/y"})
    assert caught.value.problems[0].startswith("RUNWATCHD_STORE_URL: expected ")
    assert PASSWORD not in str(caught.value)


def test_check_config_names_the_store_but_not_its_password(tmp_path: Path) -> None:
    """The summary says which store (backend and where) and masks the password."""
    env = {"HOME": str(tmp_path), "RUNWATCHD_STORE_URL": f"postgresql://rw:{PASSWORD}@db/rw"}
    cfg = load(tmp_path, "[store]\nnode = 'render-01'\n")
    text = config_text.explain(cfg, env)
    assert PASSWORD not in text
    assert "store: PostgreSQL postgresql://rw:***@db/rw; node render-01" in text.splitlines()
    default = config_text.explain(load(tmp_path, f"[runway]\nstate_dir = '{tmp_path}/st'\n"),
                                  {"HOME": str(tmp_path)})
    assert (f"store: SQLite {tmp_path}/st/journal.sqlite3; node (the host name)"
            in default.splitlines())


def test_commands_open_the_configured_store(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """open_journal opens the store [store] url names (here a SQLite file elsewhere)."""
    monkeypatch.delenv("RUNWATCHD_STORE_URL", raising=False)
    cfg = load(tmp_path, f"[runway]\nstate_dir = 'st'\n[store]\nurl = 'sqlite://{tmp_path}/j.db'\n")
    state_dir, store = open_journal(cfg)
    try:
        assert (tmp_path / "st", tmp_path / "j.db") == (
            state_dir, store.path if isinstance(store, SqliteStore) else None)
    finally:
        store.close()
