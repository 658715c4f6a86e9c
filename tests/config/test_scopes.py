"""Tests for runwatchd.config.scopes: a rule's outputs never land where a folder takes sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwatchd.config import load as config
from runwatchd.config.scopes import output_dir_problem
from runwatchd.errors import ConfigError


def _config(tmp_path: Path, output_dir: str, extra_folder: str = "") -> str:
    for name in ("hot", "hot/sub", "other", "elsewhere"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    return (f"[[folder]]\npath = 'hot'\n[folder.rule]\nendpoint = 'image_to_video'\n"
            f"output_dir = '{output_dir}'\n[folder.rule.request]\nmodel = 'gen4.5'\n"
            "promptText = 'p'\nratio = '1280:720'\nduration = 5\n"
            + (f"[[folder]]\npath = '{extra_folder}'\n" if extra_folder else ""))


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "runwatchd.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config.load_config(path)
    except ConfigError as e:
        return e.problems
    return []


@pytest.mark.parametrize(("output_dir", "extra", "fragment"), [
    (".", "", "the watched folder"),                  # the folder itself
    ("..", "", "contains the watched folder"),        # above it: every source looks like output
    ("../hot", "", "is the watched folder"),          # `..` resolved
    ("sub/../../hot", "", "is the watched folder"),
    ("../other/renders", "other", "is inside the watched folder"),  # another folder's sources
    ("../other", "other", "is the watched folder"),
])
def test_outputs_among_sources_are_refused(tmp_path: Path, output_dir: str, extra: str,
                                           fragment: str) -> None:
    """An output_dir that is, contains or lies inside a watched folder's sources is an error
    with its key path."""
    found = _problems(tmp_path, _config(tmp_path, output_dir, extra))
    assert 1 == len(found), found
    assert found[0].startswith("folder[0].rule.output_dir: ") and fragment in found[0]


def test_a_symlink_to_the_folder_is_seen_through(tmp_path: Path) -> None:
    """An output_dir that is a symlink to the watched folder is refused like the folder."""
    (tmp_path / "hot").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "hot")
    found = _problems(tmp_path, _config(tmp_path, str(tmp_path / "link")))
    assert 1 == len(found) and "is the watched folder" in found[0]


@pytest.mark.parametrize("output_dir", ["renders", "sub/renders", "../elsewhere"])
def test_a_folder_of_its_own_is_fine(tmp_path: Path, output_dir: str) -> None:
    """A dedicated subfolder (the usual `renders`) or a folder outside every watched one loads."""
    assert [] == _problems(tmp_path, _config(tmp_path, output_dir, "other"))


def test_a_non_recursive_folder_only_owns_its_own_files(tmp_path: Path) -> None:
    """Below a non-recursive watched folder's subfolders nothing is watched: allowed there."""
    own, other = tmp_path / "hot", tmp_path / "flat"
    for d in (own, other / "deep"):
        d.mkdir(parents=True)
    watched = [(own, True), (other, False)]
    assert (None, True) == (output_dir_problem(other / "deep" / "out", own, watched),
                            output_dir_problem(other / "out", own, watched) is not None)
