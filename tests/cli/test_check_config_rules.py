"""`runwatchd check-config` and the rules files: every one under every folder is checked as the
daemon checks it, --rules checks one alone, a config without folders fails; hostile trees
(a FIFO named like a rules file, a symlink loop) do not hang it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cli_helpers import cli_env, run_cli

from runwatchd.cli import check_rules
from runwatchd.config.load import load_config
from runwatchd.generation.rules import RULES_FILENAME
from runwatchd.generation.rules_files import RuleResolver, broken_rules_message

GOOD_RULES = ("endpoint = 'image_to_video'\n[request]\nmodel = 'gen4.5'\n"
              "promptText = 'a slow pan'\nratio = '1280:720'\nduration = 5\n")
TYPO_RULES = GOOD_RULES.replace("duration = 5", "duraton = 5")
BAD_TOML = "endpoint = 'image_to_video'\nmodel = = 'x'\n"


def _config(tmp_path: Path, body: str | None = None) -> tuple[Path, Path]:
    """(config path, its one recursive folder), the folder created."""
    folder = tmp_path / "hot"
    folder.mkdir(exist_ok=True)
    path = tmp_path / "runwatchd.toml"
    path.write_text(body if body is not None else f"[[folder]]\npath = '{folder}'\n",
                    encoding="utf-8")
    return path, folder


def _check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["check-config", *args], cli_env(tmp_path, secret="sk-test"), tmp_path,
                   timeout=30)


def test_broken_toml_in_a_nested_rules_file_exits_78_with_path_line_and_column(
        tmp_path: Path) -> None:
    """Bad TOML two levels down: 78, the path, line 2 and a column, as one stderr line."""
    config, folder = _config(tmp_path)
    rules = folder / "a" / "b" / RULES_FILENAME
    rules.parent.mkdir(parents=True)
    rules.write_text(BAD_TOML, encoding="utf-8")
    result = _check(tmp_path, "-c", str(config))
    assert 78 == result.returncode, result.stderr
    assert f"runwatchd: config error: {rules}: line 2, column " in result.stderr, result.stderr


def test_request_typo_in_a_rules_file_exits_78_with_did_you_mean(tmp_path: Path) -> None:
    """request.duraton: named with its key path and the did-you-mean."""
    config, folder = _config(tmp_path)
    (folder / RULES_FILENAME).write_text(TYPO_RULES, encoding="utf-8")
    result = _check(tmp_path, "-c", str(config))
    assert 78 == result.returncode, result.stderr
    assert f"{folder / RULES_FILENAME}: request.duraton: " in result.stderr, result.stderr
    assert "did you mean 'duration'?" in result.stderr, result.stderr


def test_good_rules_file_in_a_folder_passes(tmp_path: Path) -> None:
    """A valid rules file under the folder: exit 0."""
    config, folder = _config(tmp_path)
    (folder / RULES_FILENAME).write_text(GOOD_RULES, encoding="utf-8")
    result = _check(tmp_path, "-c", str(config))
    assert 0 == result.returncode, result.stderr


def test_no_folders_exits_78(tmp_path: Path) -> None:
    """A config without [[folder]]: 78 and "no folders configured" (run would refuse it)."""
    config, _ = _config(tmp_path, "[runway]\n")
    result = _check(tmp_path, "-c", str(config))
    assert 78 == result.returncode, result.stderr
    assert "no folders configured" in result.stderr, result.stderr


def test_rules_option_checks_one_file_alone(tmp_path: Path) -> None:
    """--rules: 0 for a good file, 78 with line and column for a bad one; no config needed."""
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD_RULES, encoding="utf-8")
    bad.write_text(BAD_TOML, encoding="utf-8")
    ok = _check(tmp_path, "--rules", str(good))
    failed = _check(tmp_path, "--rules", str(bad))
    assert (0, 78) == (ok.returncode, failed.returncode), ok.stderr + failed.stderr
    assert f"{bad}: line 2, column " in failed.stderr, failed.stderr


def test_rules_option_on_a_fifo_and_a_missing_file(tmp_path: Path) -> None:
    """--rules on a FIFO returns at once (not a regular file); a missing file is named."""
    fifo = tmp_path / RULES_FILENAME
    os.mkfifo(fifo)
    result = _check(tmp_path, "--rules", str(fifo))
    missing = _check(tmp_path, "--rules", str(tmp_path / "nope.toml"))
    assert (78, 78) == (result.returncode, missing.returncode)
    assert f"{fifo}: not a regular file" in result.stderr, result.stderr
    assert "nope.toml: cannot read" in missing.stderr, missing.stderr


def test_fifo_rules_file_and_symlink_loop_do_not_hang(tmp_path: Path) -> None:
    """A FIFO named runwatchd.rules.toml is reported, a symlink loop is not followed."""
    config, folder = _config(tmp_path)
    sub = folder / "sub"
    sub.mkdir()
    os.mkfifo(sub / RULES_FILENAME)
    (sub / "loop").symlink_to(folder, target_is_directory=True)
    result = _check(tmp_path, "-c", str(config))
    assert 78 == result.returncode, result.stderr
    assert [f"runwatchd: config error: {sub / RULES_FILENAME}: not a regular file"] == [
        line for line in result.stderr.splitlines() if "config error" in line]


def test_walk_respects_ignore_recursive_and_the_limit(tmp_path: Path) -> None:
    """Ignored and (non-recursive) nested folders are not looked in; the walk stops with a
    note after the limit."""
    folder = tmp_path / "hot"
    for name in ("skipme", "deep"):
        (folder / name).mkdir(parents=True)
        (folder / name / RULES_FILENAME).write_text(BAD_TOML, encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text(f"[[folder]]\npath = '{folder}'\nignore = ['skipme']\n", encoding="utf-8")
    flat = tmp_path / "flat.toml"
    flat.write_text(f"[[folder]]\npath = '{folder}'\nrecursive = false\n", encoding="utf-8")
    found, note = check_rules.folder_problems(load_config(config).folders[0])
    expected = f"{folder / 'deep' / RULES_FILENAME}: line 2, column "
    assert [True] == [p.startswith(expected) for p in found], found
    assert ([], None) == check_rules.folder_problems(load_config(flat).folders[0])
    _, stopped = check_rules.folder_problems(load_config(config).folders[0], limit=1)
    assert stopped is not None and "stopped looking for rules files after 1" in stopped


def test_daemon_warning_and_waiting_reason_share_the_wording(tmp_path: Path, caplog) -> None:
    """The resolver's warning and a file's waiting reason both carry broken_rules_message,
    with line and column."""
    rules = tmp_path / RULES_FILENAME
    rules.write_text(BAD_TOML, encoding="utf-8")
    resolver = RuleResolver(tmp_path, None)
    with caplog.at_level("WARNING"):
        reason = resolver.broken_rules_file(tmp_path / "shot.png")
    _, problems, _ = resolver.check(rules)
    expected = broken_rules_message(rules, problems)
    assert expected == reason
    assert "line 2, column" in expected
    assert [True] == [expected in r.getMessage() for r in caplog.records]
