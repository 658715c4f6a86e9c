"""The shipped systemd units: what they promise the daemon, `systemd-analyze verify`, security."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ["runwatchd.service", "runwatchd@.service"]
INSTALLED_EXE = "/opt/runwatchd/bin/runwatchd"
# The "OK" band of `systemd-analyze security` ends below 5.0 (5.0 and up is "MEDIUM").
MAX_EXPOSURE = 4.0

ANALYZE = shutil.which("systemd-analyze") or ""
needs_analyze = pytest.mark.skipif(
    not ANALYZE, reason="systemd-analyze not installed (apt-get install -y systemd)"
)


def analyze_version() -> int:
    if not ANALYZE:
        return 0
    first = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True).stdout
    match = re.match(r"systemd (\d+)", first)
    return int(match.group(1)) if match else 0


def directives(unit: str) -> dict[str, list[str]]:
    """Section.Key -> values in order (keys such as SystemCallFilter= may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in (UNITS_DIR / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def one(d: dict[str, list[str]], key: str) -> str:
    values = d[key]
    assert 1 == len(values), key
    return values[0]


def daemon_grace_seconds() -> float:
    try:
        from runwatchd.config.load import DaemonConfig
    except ImportError:  # config.py not built yet: its documented default
        return 30.0
    return float(DaemonConfig().grace_seconds)


def copy_with_existing_exe(unit: str, dest: Path) -> Path:
    """verify insists that ExecStart's binary exists; point it at this Python instead."""
    text = (UNITS_DIR / unit).read_text()
    assert INSTALLED_EXE in text
    target = dest / unit
    target.write_text(text.replace(INSTALLED_EXE, sys.executable))
    return target


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_a_watchdogged_notify_service(unit: str) -> None:
    """Type=notify from the main process, a watchdog, restart on failure, a reload via SIGHUP."""
    d = directives(unit)
    expected = {
        "Service.Type": "notify",
        "Service.NotifyAccess": "main",
        "Service.WatchdogSec": "60",
        "Service.Restart": "on-failure",
        "Service.KillSignal": "SIGTERM",
        "Service.ExecReload": "/bin/kill -HUP $MAINPID",
        "Service.User": "runwatchd",
        "Service.Group": "runwatchd",
        "Service.ProtectSystem": "strict",
        "Service.NoNewPrivileges": "yes",
        "Service.PrivateTmp": "yes",
        "Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "Unit.After": "network-online.target",
        "Unit.Wants": "network-online.target",
    }
    assert expected == {key: one(d, key) for key in expected}
    assert ["@system-service", "~@privileged @resources"] == d["Service.SystemCallFilter"]
    assert {"2", "78"} == set(one(d, "Service.RestartPreventExitStatus").split())


@pytest.mark.parametrize("unit", UNITS)
def test_stop_timeout_outlasts_the_drain(unit: str) -> None:
    """TimeoutStopSec leaves room after the default grace period to persist pending work."""
    assert int(one(directives(unit), "Service.TimeoutStopSec")) > daemon_grace_seconds() + 10



@pytest.mark.parametrize("unit", UNITS)
def test_memory_and_tasks_are_bounded(unit: str) -> None:
    """MemoryMax and TasksMax cap what a runaway daemon can take from the host."""
    d = directives(unit)
    assert ("768M", "1G", "512") == (one(d, "Service.MemoryHigh"), one(d, "Service.MemoryMax"),
                                     one(d, "Service.TasksMax"))

@pytest.mark.parametrize("unit", UNITS)
def test_proc_sys_stays_visible(unit: str) -> None:
    """No ProcSubset=pid: the daemon reads /proc/sys/fs/inotify/max_user_watches."""
    assert "Service.ProcSubset" not in directives(unit)


@pytest.mark.parametrize(
    ("unit", "config", "credential", "state"),
    [
        ("runwatchd.service", "/etc/runwatchd/config.toml",
         "/etc/runwatchd/runway_api_secret", "runwatchd"),
        ("runwatchd@.service", "/etc/runwatchd/%i.toml",
         "/etc/runwatchd/%i.runway_api_secret", "runwatchd/%i"),
    ],
)
def test_config_secret_and_state_paths(unit: str, config: str, credential: str, state: str) -> None:
    """Each unit runs `run -c CONFIG`, loads the runway_api_secret credential, owns a state dir."""
    d = directives(unit)
    assert f"{INSTALLED_EXE} run -c {config}" == one(d, "Service.ExecStart")
    assert f"runway_api_secret:{credential}" == one(d, "Service.LoadCredential")
    assert state == one(d, "Service.StateDirectory")


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit with no warning about it."""
    path = copy_with_existing_exe(unit, tmp_path)
    result = subprocess.run(
        [ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if unit.split("@")[0] in line]
    assert (0, []) == (result.returncode, complaints)


@needs_analyze
@pytest.mark.skipif(analyze_version() < 250, reason="systemd-analyze security --offline needs 250+")
@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_ok(unit: str, tmp_path: Path) -> None:
    """`systemd-analyze security --offline=true` rates the unit "OK" or better (<= 4.0)."""
    path = copy_with_existing_exe(unit, tmp_path)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}",
         "--no-pager", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    score, band = float(match.group(1)), match.group(2)
    assert band in {"PERFECT", "SAFE", "OK"}, match.group(0)
    assert score <= MAX_EXPOSURE
    assert 0 == result.returncode


DROP_IN = "runwatchd.service.d/postgresql.conf"


def test_postgresql_drop_in_orders_after_a_local_database() -> None:
    """The drop-in starts the unit after postgresql.service and wants it, but never requires it."""
    d = directives(DROP_IN)
    assert {"Unit.After": ["postgresql.service"], "Unit.Wants": ["postgresql.service"]} == d


def verify_with_drop_in(tmp_path: Path, drop_in_text: str) -> list[str]:
    """`systemd-analyze verify` of runwatchd.service with `drop_in_text` as its drop-in, found
    the way systemd finds it (the unit's directory first on the unit path); its complaints."""
    unit = copy_with_existing_exe("runwatchd.service", tmp_path)
    (tmp_path / "runwatchd.service.d").mkdir()
    (tmp_path / DROP_IN).write_text(drop_in_text)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, env=env)
    assert 0 == result.returncode, result.stdout + result.stderr
    return [line for line in (result.stdout + result.stderr).splitlines() if "runwatchd" in line]


@needs_analyze
def test_postgresql_drop_in_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` reads the drop-in beside the unit and has nothing to say."""
    assert [] == verify_with_drop_in(tmp_path, (UNITS_DIR / DROP_IN).read_text())


@needs_analyze
def test_verify_reads_the_drop_in(tmp_path: Path) -> None:
    """The check above looks at the drop-in at all: a bad key in it is reported."""
    complaints = verify_with_drop_in(tmp_path, "[Unit]\nAfter=postgresql.service\nFrobnicate=1\n")
    assert [True] == ["Frobnicate" in line for line in complaints]
