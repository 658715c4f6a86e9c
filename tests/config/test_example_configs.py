"""The example configs in config/ load, pass check-config, and are the ones the README shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runwatchd.cli import main as cli
from runwatchd.config.load import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.toml"))


def test_the_three_documented_examples_exist():
    """config/ holds the workstation, NAS and render-farm examples the README names."""
    names = {p.name for p in EXAMPLES}
    assert {"workstation.toml", "nas.toml", "render-farm.toml"} <= names
    readme = (ROOT / "README.md").read_text()
    assert [] == [name for name in sorted(names) if f"config/{name}" not in readme]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_with_folders_that_do_not_exist_here(path):
    """load_config accepts the example although its folders (/mnt/nas/..., ~/Runway/...) are
    missing on this machine: a folder may appear later, as a NAS mounts."""
    cfg = load_config(path)
    assert cfg.folders
    assert all(f.path.is_absolute() for f in cfg.folders)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check_config(path, tmp_path, capsys, monkeypatch):
    """`runwatchd check-config -c <example>` exits 0 and explains every folder, with the key
    where the service finds it (the systemd credential), never printing it."""
    secret = "key-for-check-config-0123"
    (tmp_path / "runway_api_secret").write_text(secret + "\n")
    for name in ("RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    # cli.main configures the process's logging; other tests' loggers must stay untouched.
    monkeypatch.setattr("runwatchd.service.logs.setup_logging", lambda *args, **kwargs: None)
    assert 0 == cli.main(["check-config", "-c", str(path)])
    out = capsys.readouterr().out
    assert len(load_config(path).folders) == len(re.findall(r"^folder /", out, re.MULTILINE))
    assert "systemd credential" in out
    assert secret not in out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_holds_no_secret(path):
    """Examples never carry a key: it belongs in the environment, a file or a credential."""
    assert not re.search(r"key_[0-9a-f]{16,}", path.read_text())
