"""Shell completions and the man page: the shipped copies are what the commands print, and each
shell accepts its script.

After a change to the command line, regenerate the shipped copies with
    RUNWATCHD_WRITE_DOCS=1 .venv/bin/pytest tests/cli/test_cli_docs.py -k shipped
and review the diff (as for tests/data/help.txt).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli

from runwatchd.cli import spec
from runwatchd.cli.completion import completion_script
from runwatchd.cli.manpage import man_page

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "completions/runwatchd.bash": lambda: completion_script("bash"),
    "completions/_runwatchd": lambda: completion_script("zsh"),
    "completions/runwatchd.fish": lambda: completion_script("fish"),
    "man/runwatchd.1": man_page,
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_copy_is_a_fresh_generation(name: str) -> None:
    """completions/ and man/ hold exactly what `runwatchd completion`/`man` print now."""
    fresh = SHIPPED[name]()
    if os.environ.get("RUNWATCHD_WRITE_DOCS"):
        (ROOT / name).write_text(fresh)
    assert fresh == (ROOT / name).read_text()


@pytest.mark.parametrize(("argv", "name"), [(["completion", "bash"], "completions/runwatchd.bash"),
                                            (["man"], "man/runwatchd.1")])
def test_commands_print_the_scripts(tmp_path: Path, argv: list[str], name: str) -> None:
    """`runwatchd completion bash` and `runwatchd man` print them on stdout, exit 0."""
    proc = run_cli(argv, cli_env(tmp_path), tmp_path)
    assert (0, (ROOT / name).read_text(), "") == (proc.returncode, proc.stdout, proc.stderr)


def bash_complete(*words: str) -> list[str]:
    """What the bash script offers for the last of `words` (the word being completed)."""
    script = ROOT / "completions" / "runwatchd.bash"
    quoted = " ".join(f"'{w}'" for w in words)
    run = (f'source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; '
           'COMPREPLY=(); _runwatchd; printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "--norc", "-c", run], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if line]


@pytest.mark.parametrize(("words", "expected"), [
    (("runwatchd", "up"), ["upload"]),
    (("runwatchd", "-v", "che"), ["check-config"]),
    (("runwatchd", "completion", ""), list(spec.SHELLS)),
    (("runwatchd", "status", "--log-format", ""), ["text", "json"]),
    (("runwatchd", "upload", "--j"), ["--json", "--jobs"]),
    (("runwatchd", "-c", "x.toml", "sc"), ["scan"]),
])
def test_bash_completes_commands_options_and_choices(words: tuple[str, ...],
                                                     expected: list[str]) -> None:
    """The bash script completes commands (after global options too), options and choices."""
    assert expected == bash_complete(*words)


def test_bash_completes_directories_for_watch(tmp_path: Path) -> None:
    """--watch offers directories only."""
    (tmp_path / "hot").mkdir()
    (tmp_path / "hot.txt").write_text("")
    assert [f"{tmp_path}/hot"] == bash_complete("runwatchd", "run", "--watch", f"{tmp_path}/ho")


@pytest.mark.parametrize(("shell", "check"), [
    ("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"]),
])
def test_zsh_and_fish_accept_their_scripts(shell: str, check: list[str]) -> None:
    """zsh and fish parse their scripts (where installed: apt-get install zsh fish)."""
    if not shutil.which(check[0]):
        pytest.skip(f"{shell} is not installed")
    name = {"zsh": "_runwatchd", "fish": "runwatchd.fish"}[shell]
    proc = subprocess.run([*check, str(ROOT / "completions" / name)], capture_output=True,
                          text=True)
    assert (0, "") == (proc.returncode, proc.stderr)


def test_fish_completes_commands() -> None:
    """fish offers the commands and the shells (where installed)."""
    if not shutil.which("fish"):
        pytest.skip("fish is not installed")
    script = ROOT / "completions" / "runwatchd.fish"
    out = subprocess.run(["fish", "--no-config", "-c",
                          f"source {script}; complete -C 'runwatchd up'; "
                          "complete -C 'runwatchd completion '"],
                         capture_output=True, text=True, check=True).stdout
    assert ["upload", *sorted(spec.SHELLS)] == [line.split("\t")[0] for line in out.splitlines()]


def test_man_page_names_every_command_and_option() -> None:
    """runwatchd(1) has a section per command, and every option and environment variable."""
    page = man_page()
    missing = [c.name for c in spec.COMMANDS if f'.SS "{c.name}"' not in page]
    missing += [flag for c in spec.COMMANDS for o in spec.options_of(c) + spec.GLOBAL_OPTIONS
                for flag in o.flags if o.flags[0].startswith("-")
                and flag.replace("-", "\\-") not in page]
    missing += [name for name, _ in spec.ENVIRONMENT if name not in page]
    assert [] == missing


def test_man_page_renders_without_warnings() -> None:
    """groff renders the page with every warning on and reports nothing (where installed)."""
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=man_page(),
                          capture_output=True, text=True)
    assert (0, "") == (proc.returncode, proc.stderr)
