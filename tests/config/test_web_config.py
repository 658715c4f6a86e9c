"""Tests for the status page's settings: `[daemon] web`, `web_token_file`, and reading the token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runwatchd.config import starter
from runwatchd.config.load import Config, load_config
from runwatchd.config.web_token import read_web_token
from runwatchd.errors import ConfigError

TOKEN = "0123456789abcdef0123"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "runwatchd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "web-token"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_web_is_off_by_default(tmp_path: Path) -> None:
    """Without [daemon] web the page is off and has no token."""
    cfg = load(tmp_path, "")
    assert (None, None) == (cfg.daemon.web, cfg.daemon.web_token_file)


def test_web_and_token_file_are_read_relative_to_the_config(tmp_path: Path) -> None:
    """web keeps its host:port; web_token_file is a path relative to the config file."""
    cfg = load(tmp_path, "[daemon]\nweb = '127.0.0.1:8787'\nweb_token_file = 'secrets/token'\n")
    assert ("127.0.0.1:8787", tmp_path / "secrets" / "token") == (
        cfg.daemon.web, cfg.daemon.web_token_file)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[daemon]\nweb = '8787'",
         "daemon.web: expected host:port such as '127.0.0.1:9464', got '8787'"),
        ("[daemon]\nweb = '127.0.0.1:99999'",
         "daemon.web: expected host:port such as '127.0.0.1:9464', got '127.0.0.1:99999'"),
        ("[daemon]\nweb = 8787", "daemon.web: expected a string, got 8787"),
        ("[daemon]\nweb_token_file = ' '", "daemon.web_token_file: must not be empty"),
    ],
)
def test_bad_web_settings_are_reported_with_their_key(tmp_path: Path, text: str,
                                                       expected: str) -> None:
    """A bad address or an empty token path is a config problem naming its key."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert [expected] == info.value.problems


def test_token_is_read_stripped(tmp_path: Path) -> None:
    """The token file's one line is the token, without its newline."""
    assert TOKEN == read_web_token(token_file(tmp_path, f"  {TOKEN}\n"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\n", "is empty"),
        (f"{TOKEN}\n{TOKEN}\n", "whitespace or control characters"),
        ("short\n", "shorter than 16 characters"),
    ],
)
def test_unusable_tokens_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    """An empty, multi-line or short token is refused with the file's key."""
    with pytest.raises(ConfigError) as info:
        read_web_token(token_file(tmp_path, text))
    assert 1 == len(info.value.problems)
    assert info.value.problems[0].startswith("daemon.web_token_file: ")
    assert expected in info.value.problems[0]


def test_missing_token_file_is_a_config_error(tmp_path: Path) -> None:
    """A token file that cannot be read is a config error, not a page without a token."""
    with pytest.raises(ConfigError, match="cannot read"):
        read_web_token(tmp_path / "nope")


def test_world_readable_token_is_used_with_a_warning(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A token file every user can read still works, and the log says to chmod it."""
    with caplog.at_level(logging.WARNING):
        assert TOKEN == read_web_token(token_file(tmp_path, TOKEN, mode=0o644))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [True] == ["readable by every user" in w and "chmod 600" in w for w in warnings]
    assert [False] == [TOKEN in w for w in warnings]


def test_explain_describes_the_page_but_never_the_token(tmp_path: Path) -> None:
    """check-config names the page's address and the token's file, never the token."""
    path = token_file(tmp_path, TOKEN)
    cfg = load(tmp_path, f"[daemon]\nweb = '127.0.0.1:8787'\nweb_token_file = '{path}'\n")
    text = starter.explain(cfg, {"HOME": str(tmp_path)})
    assert TOKEN not in text
    assert (f"status page: http://127.0.0.1:8787/ (retry allowed with the token in {path})"
            in text)


@pytest.mark.parametrize(
    ("daemon", "expected"),
    [
        ("", "status page: off"),
        ("web = '127.0.0.1:8787'",
         "status page: http://127.0.0.1:8787/ (read-only: no web_token_file)"),
        ("web = '127.0.0.1:8787'\nweb_token_file = 'missing'",
         "PROBLEM: daemon.web_token_file: cannot read"),
    ],
)
def test_explain_says_whether_the_page_is_on(tmp_path: Path, daemon: str, expected: str) -> None:
    """check-config tells an off page, a read-only page and a broken token file apart."""
    cfg = load(tmp_path, f"[daemon]\n{daemon}\n")
    assert expected in starter.explain(cfg, {"HOME": str(tmp_path)})
