"""Tests for runwatchd.generation.rules' RuleResolver: the nearest rules file wins, edits are read
again, broken ones are reported and hold their files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from rules_helpers import GEN45, rule

from runwatchd.generation.rules import RULES_FILENAME
from runwatchd.generation.rules_files import RuleResolver


def gen45(prompt: str) -> str:
    """The TOML lines of a complete gen4.5 request whose promptText is `prompt`."""
    return f'model = "gen4.5"\npromptText = "{prompt}"\nratio = "1280:720"\nduration = 5\n'


def write_rules(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RULES_FILENAME
    path.write_text(text, encoding="utf-8")
    return path


def test_nearest_rules_file_wins(tmp_path: Path) -> None:
    """The rules file nearest to the file wins, then the ones above, then the config rule."""
    config_rule = rule(**{**GEN45, "promptText": "from-config"})
    write_rules(tmp_path, 'endpoint = "image_to_video"\n[request]\n' + gen45("root"))
    write_rules(
        tmp_path / "a" / "b",
        'endpoint = "image_upscale"\noutput_dir = "up"\n[request]\n'
        'model = "magnific_precision_upscaler_v2"\n',
    )
    resolver = RuleResolver(tmp_path, config_rule)
    deep = resolver.rule_for(tmp_path / "a" / "b" / "c" / "x.jpg")
    assert deep is not None
    assert ("image_upscale", "magnific_precision_upscaler_v2", str(tmp_path / "a" / "b" / RULES_FILENAME), "b") == (
        deep.endpoint,
        deep.request["model"],
        deep.source,
        deep.name,
    )
    assert tmp_path / "a" / "b" / "up" == deep.output_path(tmp_path)
    root_rule = resolver.rule_for(tmp_path / "a" / "x.jpg")
    assert root_rule is not None and "root" == root_rule.request["promptText"]
    (tmp_path / RULES_FILENAME).unlink()
    assert config_rule is resolver.rule_for(tmp_path / "a" / "x.jpg")
    assert config_rule is resolver.rule_for(Path("/elsewhere/x.jpg"))


def test_rules_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    """An edited rules file is read again; an unchanged one is served from the cache."""
    path = write_rules(tmp_path, 'endpoint = "image_to_video"\n[request]\n' + gen45("one"))
    resolver = RuleResolver(tmp_path, None)
    first = resolver.rule_for(tmp_path / "x.jpg")
    assert first is resolver.rule_for(tmp_path / "x.jpg")
    path.write_text('endpoint = "image_to_video"\n[request]\n' + gen45("two"), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = resolver.rule_for(tmp_path / "x.jpg")
    assert second is not None and "two" == second.request["promptText"]


def test_invalid_rules_file_is_ignored_and_reported_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A broken rules file is skipped for the next rule up, logged once, and in problems()."""
    config_rule = rule(**{**GEN45, "promptText": "cfg"})
    path = write_rules(tmp_path / "sub", 'endpoint = "img2vid"\ncolour = 1\n')
    resolver = RuleResolver(tmp_path, config_rule)
    with caplog.at_level(logging.WARNING, logger="runwatchd.generation.rules"):
        assert config_rule is resolver.rule_for(tmp_path / "sub" / "x.jpg")
        assert config_rule is resolver.rule_for(tmp_path / "sub" / "y.jpg")
    assert 1 == len(caplog.records)
    assert str(path) in caplog.records[0].getMessage()
    found = resolver.problems()
    assert [str(path)] == list(found)
    assert (
        "colour: unknown key (known: endpoint, input_field, name, output_dir, request)"
        == found[str(path)][0]
    )
    assert found[str(path)][1].startswith("endpoint: unknown endpoint 'img2vid' (known: ")
    path.write_text('endpoint = "image_to_video"\n[request\n', encoding="utf-8")
    assert config_rule is resolver.rule_for(tmp_path / "sub" / "x.jpg")
    assert {
        str(path): ["line 2, column 9: Expected ']' at the end of a table declaration"]
    } == resolver.problems()
    path.unlink()
    assert config_rule is resolver.rule_for(tmp_path / "sub" / "x.jpg")
    assert {} == resolver.problems()


def test_files_under_a_broken_rules_file_wait_for_the_fix(tmp_path: Path) -> None:
    """A broken nearest rules file blocks its files (no fallback billing); a valid one unblocks."""
    write_rules(tmp_path, 'endpoint = "image_to_video"\n[request]\n' + gen45("root"))
    path = write_rules(tmp_path / "sub", 'endpoint = "img2vid"\n')
    resolver = RuleResolver(tmp_path, rule(**{**GEN45, "promptText": "cfg"}))
    reason = resolver.broken_rules_file(tmp_path / "sub" / "deeper" / "x.jpg")
    assert reason is not None and reason.startswith(f"invalid rules file {path}: endpoint")
    assert None is resolver.broken_rules_file(tmp_path / "x.jpg")
    path.write_text('endpoint = "image_to_video"\n[request]\n' + gen45("sub"), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert None is resolver.broken_rules_file(tmp_path / "sub" / "x.jpg")


def test_a_directory_named_like_a_rules_file_is_reported(tmp_path: Path) -> None:
    """A directory called runwatchd.rules.toml is skipped and reported, not crashed on."""
    (tmp_path / RULES_FILENAME).mkdir()
    resolver = RuleResolver(tmp_path, None)
    assert None is resolver.rule_for(tmp_path / "x.jpg")
    assert {str(tmp_path / RULES_FILENAME): ["not a regular file"]} == resolver.problems()


@pytest.mark.parametrize(("where", "output_dir"), [
    ("sub", ".."),           # hot/sub/.. is the watched folder itself
    ("sub", "../../hot"),    # the same, spelled through the folder's name
    ("", "../hot"),          # hot/../hot
    ("", "."),
    ("sub", "../.."),        # above the watched folder: every source would look like an output
])
def test_rules_file_with_outputs_among_sources_holds_its_files(
        tmp_path: Path, where: str, output_dir: str) -> None:
    """An output_dir that is or contains the watched folder is refused with path and key; its
    files wait with the reason instead of falling back to a rule further up."""
    hot = tmp_path / "hot"
    path = write_rules(hot / where, f'endpoint = "image_to_video"\noutput_dir = "{output_dir}"\n'
                                    '[request]\n' + gen45("p"))
    resolver = RuleResolver(hot, rule(**{**GEN45, "promptText": "from-config"}), [(hot, True)])
    media = hot / where / "shot.jpg"
    why = resolver.broken_rules_file(media)
    assert why is not None and f"invalid rules file {path}: output_dir: " in why, why
    assert "watched folder" in why
    assert [str(path)] == list(resolver.problems())


def test_rules_file_outputs_inside_another_watched_folder_are_refused(tmp_path: Path) -> None:
    """output_dir inside another watched folder (through a symlink too) is refused."""
    hot, other = tmp_path / "hot", tmp_path / "other"
    other.mkdir()
    (tmp_path / "link").symlink_to(other)
    write_rules(hot, 'endpoint = "image_to_video"\noutput_dir = "../link/renders"\n'
                     '[request]\n' + gen45("p"))
    resolver = RuleResolver(hot, None, [(hot, True), (other, True)])
    why = resolver.broken_rules_file(hot / "shot.jpg")
    assert why is not None and f"inside the watched folder {other}" in why, why


def test_rules_file_outputs_in_a_folder_of_their_own_are_fine(tmp_path: Path) -> None:
    """A dedicated folder inside the rule's own watched folder (hot/sub/../renders) is fine."""
    hot = tmp_path / "hot"
    write_rules(hot / "sub", 'endpoint = "image_to_video"\noutput_dir = "../renders"\n'
                             '[request]\n' + gen45("p"))
    resolver = RuleResolver(hot, None, [(hot, True)])
    found = resolver.rule_for(hot / "sub" / "shot.jpg")
    assert (None, hot / "renders") == (
        resolver.broken_rules_file(hot / "sub" / "shot.jpg"),
        found and Path(os.path.normpath(found.output_path(hot))))
