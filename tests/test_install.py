"""The install works as documented: the README's service blocks run as written, and the built
sdist and wheel carry the units, configs, completions, man page and licence, so that a fresh
install of the wheel writes a working unit and config with one command.

Nothing here reaches the network: the sdist and wheel are built with --no-isolation (setuptools
and build come with the test extra), and the new virtualenvs borrow this one's dependencies
through a .pth file instead of downloading them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import cli_env

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- install-block -->"
KEY = "key_install_test_0123456789abcdef"
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", "out")
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def install_blocks() -> list[str]:
    """The shell blocks the README marks as the service install, in order."""
    readme = (ROOT / "README.md").read_text()
    return re.findall(re.escape(MARKER) + r"\s*```sh\n(.*?)```", readme, re.DOTALL)


def source_copy(dest: Path) -> Path:
    """The checkout as a user has it (no venv, no build output), so a build leaves no trace."""
    return Path(shutil.copytree(ROOT, dest, ignore=NOT_SOURCE))


def borrow_dependencies(venv: Path) -> None:
    """Let `venv` import this environment's dependencies (httpx, watchdog, ...) after its own
    packages; the .pth files of this environment (its editable runwatchd) stay out."""
    site = venv / "lib" / PY / "site-packages"
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def shim(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def record(bin_dir: Path, log: Path, *names: str) -> None:
    """Commands that only note how they were called (systemd is not running here)."""
    for name in names:
        shim(bin_dir, name, f'echo "{name}${{*:+ $*}}" >> {log}')


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The sdist and, built from it, the wheel (as `python -m build` does)."""
    work = tmp_path_factory.mktemp("build")
    src = source_copy(work / "src")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                    str(work / "dist"), str(src)], check=True, capture_output=True)
    yield {"sdist": next((work / "dist").glob("*.tar.gz")),
           "wheel": next((work / "dist").glob("*.whl"))}


def shipped_files() -> list[str]:
    """Every file of the shipped folders, relative to the checkout (drop-in folders included:
    a wheel lists files, not directories)."""
    return [p.relative_to(ROOT).as_posix() for d in ("systemd", "config", "completions", "man")
            for p in sorted((ROOT / d).rglob("*")) if p.is_file()]


def test_sdist_carries_units_configs_docs_and_licence(dists: dict[str, Path]) -> None:
    """The sdist has systemd/, config/, completions/, man/, LICENSE and the build hook."""
    import tarfile

    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = set(shipped_files()) | {"LICENSE", "setup.py", "MANIFEST.in"}
    assert set() == wanted - names


def test_wheel_installs_them_as_package_data_with_pep639_licence(dists: dict[str, Path]) -> None:
    """The wheel holds them under runwatchd/share/, and its metadata says MIT the PEP 639 way."""
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        meta = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    wanted = {f"runwatchd/share/{name}" for name in shipped_files()}
    assert (set(), True, True) == (
        wanted - names, "License-Expression: MIT" in meta.splitlines(),
        any(n.endswith(".dist-info/licenses/LICENSE") for n in names))


def test_fresh_wheel_install_writes_a_working_service_in_one_command(
        tmp_path: Path, dists: dict[str, Path]) -> None:
    """In a new virtualenv with only the wheel installed, `runwatchd init --service --root R`
    writes the units (ExecStart= naming that venv's runwatchd, which runs), the sysusers.d file
    and a config that passes check-config."""
    venv, root = tmp_path / "venv", tmp_path / "root"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-deps", "--no-index", str(dists["wheel"])],
                   check=True, capture_output=True)
    borrow_dependencies(venv)
    program = venv / "bin" / "runwatchd"
    env = cli_env(tmp_path, secret=KEY)
    made = subprocess.run([str(program), "init", "--service", "--root", str(root)], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    unit = (root / "etc/systemd/system/runwatchd.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run -c (\S+)$", unit, re.MULTILINE)
    assert exec_start is not None
    ran = subprocess.run([exec_start.group(1), "--version"], capture_output=True, text=True)
    checked = subprocess.run([str(program), "check-config", "-c",
                              str(root / exec_start.group(2).lstrip("/"))],
                             env=env, capture_output=True, text=True, cwd=tmp_path)
    assert (0, "", str(program), "runwatchd 0.1.0\n", 0) == (
        made.returncode, made.stderr, exec_start.group(1), ran.stdout, checked.returncode)
    assert (ROOT / "systemd/runwatchd.sysusers.conf").read_text() == (
        root / "etc/sysusers.d/runwatchd.conf").read_text()


@pytest.fixture
def scratch(tmp_path: Path) -> dict[str, Path]:
    """A root for /etc and /opt, a bin/ of shims ahead of PATH, a log of their calls."""
    paths = {"root": tmp_path / "root", "bin": tmp_path / "bin", "log": tmp_path / "calls.log",
             "checkout": source_copy(tmp_path / "checkout")}
    paths["root"].mkdir()
    paths["bin"].mkdir()
    paths["log"].write_text("")
    return paths


def as_test_script(block: str, root: Path) -> str:
    """A README block with / moved to `root`: the paths a test must move, nothing else."""
    moved = re.sub(r"(?<![\w./-])/(etc|opt)/", f"{root}/\\1/", block)
    return moved.replace("init --service", f"init --service --root {root}")


def test_readme_service_blocks_run_as_written(scratch: dict[str, Path]) -> None:
    """The README's install blocks, pasted into a shell in order, install runwatchd into the
    venv, write the unit (identical to systemd/runwatchd.service), the sysusers.d file, a root-only
    key, a config that passes check-config, and call systemd as documented."""
    root, bin_dir, log = scratch["root"], scratch["bin"], scratch["log"]
    record(bin_dir, log, "apt-get", "systemd-sysusers", "systemctl")
    # `python3 -m venv DIR` and DIR/bin/pip without the network: a venv that borrows this
    # environment's dependencies (setuptools too, for the build) and whose pip is this one's.
    purelib = sysconfig.get_paths()["purelib"]
    shim(bin_dir, "python3", f'[ "$1 $2" = "-m venv" ] || exit 99\n'
         f'{sys.executable} -m venv --without-pip "$3" || exit 1\n'
         f'echo {purelib} > "$3/lib/{PY}/site-packages/_test_dependencies.pth"\n'
         f'printf \'#!/bin/sh\\nexec {sys.executable} -m pip --python "$(dirname "$0")/python" '
         f'"$@" --quiet --no-deps --no-index --no-build-isolation\\n\' > "$3/bin/pip"\n'
         f'chmod +x "$3/bin/pip"')
    blocks = install_blocks()
    script = "\n".join(as_test_script(b, root) for b in blocks)
    env = cli_env(scratch["checkout"], PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-eu", "-c", script], input=KEY + "\n", env=env,
                          cwd=scratch["checkout"], capture_output=True, text=True, timeout=120)
    assert (0, "") == (proc.returncode, proc.stderr), proc.stdout
    secret = root / "etc/runwatchd/runway_api_secret"
    assert (4, [
        "apt-get install -y python3-venv",
        "systemd-sysusers",
        "systemctl edit runwatchd",
        "systemctl daemon-reload",
        "systemctl enable --now runwatchd",
    ], (ROOT / "systemd/runwatchd.service").read_text(), KEY + "\n", 0o600) == (
        len(blocks), log.read_text().splitlines(),
        (root / "etc/systemd/system/runwatchd.service").read_text(), secret.read_text(),
        stat.S_IMODE(secret.stat().st_mode))
    assert f"API secret: from systemd credential {secret}\n" in proc.stdout
