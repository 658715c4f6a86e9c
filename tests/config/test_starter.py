"""Tests for runwatchd.config.starter: the starter config init writes, the check-config summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runwatchd.config import starter as config_text
from runwatchd.config.load import Config, DaemonConfig, FolderSettings, RunwayConfig, load_config


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "runwatchd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_starter_config_round_trips_without_problems(tmp_path: Path, monkeypatch) -> None:
    """The starter config loads cleanly and its values equal the dataclass defaults."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load(tmp_path, config_text.starter_config())
    assert (RunwayConfig(), FolderSettings(), DaemonConfig()) == (
        cfg.runway,
        cfg.defaults,
        cfg.daemon,
    )
    assert [(tmp_path.resolve() / "runway-inbox", True, None)] == [
        (f.path, f.recursive, f.rule) for f in cfg.folders
    ]


def test_starter_config_commented_examples_are_valid(tmp_path: Path, monkeypatch) -> None:
    """Uncommenting every example key of the starter config still gives a valid config."""
    monkeypatch.setenv("HOME", str(tmp_path))
    text = re.sub(r"(?m)^# (?=\[|\w+ = )", "", config_text.starter_config())
    cfg = load(tmp_path, text)
    rule = cfg.folders[0].rule
    assert rule is not None
    assert ("image_to_video", "renders", "promptImage") == (
        rule.endpoint,
        rule.output_dir,
        rule.input_field,
    )
    assert ("127.0.0.1:9464", 5.0) == (cfg.daemon.metrics, cfg.folders[0].settings.settle_seconds)


def test_write_starter_refuses_to_overwrite(tmp_path: Path) -> None:
    """init writes the starter once, creates parents, leaves no temp file, never overwrites."""
    path = tmp_path / "etc" / "config.toml"
    config_text.write_starter(path)
    assert config_text.starter_config() == path.read_text(encoding="utf-8")
    path.write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError):
        config_text.write_starter(path)
    assert ("mine", ["config.toml"]) == (
        path.read_text(encoding="utf-8"),
        sorted(p.name for p in path.parent.iterdir()),
    )


def test_explain_names_the_secret_source_but_not_the_secret(tmp_path: Path) -> None:
    """check-config's summary says where the secret comes from and never shows it."""
    cfg = load(tmp_path, "[[folder]]\npath = 'stills'\n[folder.rule]\nendpoint = 'image_to_video'\n"
                         "[folder.rule.request]\nmodel = 'gen4.5'\npromptText = 'p'\n"
                         "ratio = '1280:720'\nduration = 5\n")
    env = {"RUNWAYML_API_SECRET": "sk-very-secret", "HOME": str(tmp_path)}
    text = config_text.explain(cfg, env)
    assert "sk-very-secret" not in text
    assert "API secret: from RUNWAYML_API_SECRET" in text
    assert f"outputs to {tmp_path.resolve() / 'stills' / 'outputs'}" in text
