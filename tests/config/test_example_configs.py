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


def test_several_hosts_example_loads_as_each_node_of_it(tmp_path):
    """README "Several hosts": render-01's config loads, and with its node and path changed it is
    ingest-01's (the same store, share and rule; lease and outage times as written)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Several hosts"):]
    text = re.search(r"```toml\n(.*?)```", section, re.DOTALL).group(1)
    configs = {}
    for node, path in (("render-01", "/mnt/nas/hot"), ("ingest-01", "/srv/nas/hot")):
        conf = tmp_path / f"{node}.toml"
        conf.write_text(text.replace('"render-01"', f'"{node}"').replace("/mnt/nas/hot", path))
        configs[node] = load_config(conf)
    assert [("render-01", Path("/mnt/nas/hot")), ("ingest-01", Path("/srv/nas/hot"))] == [
        (c.store.node, c.folders[0].path) for c in configs.values()]
    first, other = configs.values()
    # The rule's output folder lies in each node's own mount of the share.
    assert (first.store.url, first.folders[0].share, first.folders[0].rule.request) == (
        other.store.url, other.folders[0].share, other.folders[0].rule.request)
    assert ("hot", 30.0, 60.0, "polling") == (first.folders[0].share, first.store.lease_seconds,
                                              first.store.outage_seconds,
                                              first.folders[0].settings.observer)
