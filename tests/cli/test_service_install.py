"""`runwatchd init --service`: the units, the sysusers.d file and a starter config where systemd
expects them, never overwriting, and the steps that finish the install."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli

from runwatchd.config.load import load_config

ROOT = Path(__file__).resolve().parents[2]
WRITTEN = ["etc/runwatchd/config.toml", "etc/systemd/system/runwatchd.service",
           "etc/systemd/system/runwatchd@.service", "etc/sysusers.d/runwatchd.conf"]


def test_writes_units_sysusers_and_config(tmp_path: Path) -> None:
    """Four files, 0644; the units are systemd/'s with ExecStart= naming this environment's
    runwatchd; the config watches the units' /srv/hot; the next steps are printed."""
    root = tmp_path / "root"
    proc = run_cli(["init", "--service", "--root", str(root)], cli_env(tmp_path), tmp_path)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    program = str(Path(sys.executable).parent / "runwatchd")
    shipped = (ROOT / "systemd/runwatchd.service").read_text()
    assert (0, "", WRITTEN, {0o644}) == (
        proc.returncode, proc.stderr, files,
        {stat.S_IMODE((root / f).stat().st_mode) for f in files})
    assert (shipped.replace("/opt/runwatchd/bin/runwatchd", program),
            [Path("/srv/hot")]) == (
        (root / WRITTEN[1]).read_text(),
        [f.path for f in load_config(root / WRITTEN[0]).folders])
    steps = {line.split("  #")[0].strip() for line in proc.stdout.splitlines()}
    assert {"systemd-sysusers", "systemctl daemon-reload && systemctl enable --now runwatchd"} <= (
        steps)


def test_refuses_to_overwrite_and_then_writes_nothing(tmp_path: Path) -> None:
    """One target present: it is named, nothing else is written, exit 1."""
    root = tmp_path / "root"
    mine = root / "etc/runwatchd/config.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text("# mine\n")
    proc = run_cli(["init", "--service", "--root", str(root)], cli_env(tmp_path), tmp_path)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert (1, [f"runwatchd: {mine} exists; not overwriting it",
                "runwatchd: nothing written (move those files away to start afresh)"],
            [mine], "# mine\n") == (proc.returncode, proc.stderr.splitlines(), files,
                                    mine.read_text())


@pytest.mark.parametrize(("argv", "expected"), [
    (["init", "--service", "x.toml"],
     "runwatchd: init --service writes /etc/runwatchd/config.toml; give no PATH"),
    (["init", "--root", "r"], "runwatchd: --root only goes with --service"),
])
def test_usage_mistakes(tmp_path: Path, argv: list[str], expected: str) -> None:
    """A PATH with --service, or --root without it: one line, exit 2, nothing written."""
    proc = run_cli(argv, cli_env(tmp_path), tmp_path)
    assert (2, [expected], []) == (proc.returncode, proc.stderr.splitlines(),
                                   [p for p in tmp_path.rglob("*.toml")])
