"""Tests for reading the API secret and the config file: sources, order, and hostile files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from runwatchd.config import load as config
from runwatchd.config import sources
from runwatchd.config.load import Config, DaemonConfig, FolderSettings, RunwayConfig
from runwatchd.errors import ConfigError


def with_secret_file(path: Path) -> Config:
    return Config(RunwayConfig(api_secret_file=path), FolderSettings(), (), DaemonConfig(), None)


def test_secret_resolution_order(tmp_path: Path) -> None:
    """RUNWAYML_API_SECRET wins, then api_secret_file, then $CREDENTIALS_DIRECTORY; stripped."""
    (tmp_path / "file").write_text("from-file\n", encoding="utf-8")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "runway_api_secret").write_text("  from-cred\n", encoding="utf-8")
    with_file = Config(
        RunwayConfig(api_secret_file=tmp_path / "file"), FolderSettings(), (), DaemonConfig(), None
    )
    without = config.config_for_dirs([])
    creds = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    assert "from-env" == sources.resolve_secret(
        with_file, {"RUNWAYML_API_SECRET": "from-env\n", **creds}
    )
    assert "from-file" == sources.resolve_secret(with_file, {"RUNWAYML_API_SECRET": "", **creds})
    assert "from-cred" == sources.resolve_secret(without, creds)


def test_missing_secret_says_what_was_tried(tmp_path: Path) -> None:
    """Without any source the error lists every source tried."""
    with pytest.raises(ConfigError) as info:
        sources.resolve_secret(config.config_for_dirs([]), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert (
        "no Runway API secret found; tried RUNWAYML_API_SECRET (not set), [runway] api_secret_file "
        f"(not set), systemd credential {tmp_path / 'runway_api_secret'} (no such file)"
    ) == str(info.value)


def test_secret_errors_never_contain_the_secret(tmp_path: Path) -> None:
    """A malformed or unreadable secret is rejected without echoing it."""
    (tmp_path / "file").write_text("sk-top secret\n", encoding="utf-8")
    cfg = Config(
        RunwayConfig(api_secret_file=tmp_path / "file"), FolderSettings(), (), DaemonConfig(), None
    )
    with pytest.raises(ConfigError) as info:
        sources.resolve_secret(cfg, {})
    assert "sk-top" not in str(info.value) and "whitespace" in str(info.value)
    missing = Config(
        RunwayConfig(api_secret_file=tmp_path / "nope"), FolderSettings(), (), DaemonConfig(), None
    )
    with pytest.raises(ConfigError) as info:
        sources.resolve_secret(missing, {})
    assert (
        f"runway.api_secret_file: cannot read {tmp_path / 'nope'} (No such file or directory)"
        == str(info.value)
    )


def test_a_fifo_as_secret_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO where the key file should be is "not a regular file" at once, not a hang."""
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        sources.resolve_secret(with_secret_file(fifo), {})


def test_a_huge_secret_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A sparse 4 GB key file is refused after reading at most the cap."""
    big = tmp_path / "secret"
    with open(big, "wb") as f:
        f.truncate(4 * 1024**3)
    with pytest.raises(ConfigError, match="larger than"):
        sources.resolve_secret(with_secret_file(big), {})


def test_a_world_readable_secret_file_is_warned_about(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A key file every user can read still works, with one warning that says how to fix it."""
    key = tmp_path / "secret"
    key.write_text("sk-abc\n", encoding="utf-8")
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="runwatchd.config.load"):
        assert "sk-abc" == sources.resolve_secret(with_secret_file(key), {})
    assert [f"chmod 600 {key}"] == [m[m.index("chmod"):m.index("`", m.index("chmod"))]
                                   for m in caplog.messages]
    assert not any("sk-abc" in m for m in caplog.messages)


def test_a_private_secret_file_gets_no_warning(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A 0600 key file is read silently."""
    key = tmp_path / "secret"
    key.write_text("sk-abc\n", encoding="utf-8")
    key.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="runwatchd.config.load"):
        sources.resolve_secret(with_secret_file(key), {})
    assert [] == caplog.messages


def test_a_fifo_as_config_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """`-c` naming a FIFO gives a config error at once."""
    fifo = tmp_path / "runwatchd.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        config.load_config(fifo)
