"""`runwatchd status`: the service's state directory, the store it reads, LSB exit codes, --watch."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from runwatchd.cli import main as cli
from runwatchd.config.load import parse_config
from runwatchd.service import status
from runwatchd.store import open_store

# Every test here leaves the process's logging as it found it.
pytestmark = pytest.mark.usefixtures("restore_logging")




def test_unit_state_dirs() -> None:
    """The units' configs map to StateDirectory=runwatchd[/NAME]; any other config to none."""
    etc, lib = Path("/etc/runwatchd"), Path("/var/lib/runwatchd")
    assert lib == status.unit_state_dir(etc / "config.toml")
    assert lib / "studio" == status.unit_state_dir(etc / "studio.toml")
    assert None is status.unit_state_dir(Path("/home/me/runwatchd.toml"))
    assert None is status.unit_state_dir(etc / "secret")
    assert None is status.unit_state_dir(None)


def service_config(etc: Path, name: str = "config.toml", extra: str = "") -> Path:
    etc.mkdir(parents=True, exist_ok=True)
    path = etc / name
    path.write_text(f'{extra}[[folder]]\npath = "/srv/inbox"\n')
    return path


def test_a_service_config_reads_the_units_state_dir(tmp_path: Path) -> None:
    """Without $STATE_DIRECTORY, a config where the unit reads it means the unit's state dir."""
    from runwatchd.config.load import load_config

    etc, lib = tmp_path / "etc", tmp_path / "lib"
    cfg = load_config(service_config(etc, "studio.toml"))
    env = {"HOME": str(tmp_path / "home")}
    assert lib / "studio" == status.status_state_dir(cfg, env, etc=etc, lib=lib)
    # systemd's variable and the TOML key still win, as for the daemon.
    assert Path("/x") == status.status_state_dir(cfg, {"STATE_DIRECTORY": "/x"}, etc=etc, lib=lib)
    keyed = load_config(service_config(etc, "keyed.toml", '[runway]\nstate_dir = "/y"\n'))
    assert Path("/y") == status.status_state_dir(keyed, env, etc=etc, lib=lib)


def test_no_daemon_is_exit_3_and_names_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a service-style state dir with no daemon: it says so, names the store, exits 3."""
    lib = tmp_path / "var-lib-runwatchd"
    monkeypatch.setattr(status, "UNIT_CONFIG_DIR", tmp_path / "etc")
    monkeypatch.setattr(status, "UNIT_STATE_DIR", lib)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = service_config(tmp_path / "etc")
    open_store(lib).close()  # a journal the service left behind
    assert 3 == cli.main(["status", "-c", str(config)])
    out = capsys.readouterr().out
    assert f"state directory: {lib}" in out
    assert f"store: SQLite {lib / 'journal.sqlite3'}" in out
    assert "daemon: not running (no process holds the store)" in out
    assert 3 == cli.main(["status", "-c", str(config), "--json"])
    loaded = json.loads(capsys.readouterr().out)
    assert (str(lib), False, None) == (loaded["state_dir"], loaded["running"], loaded["owner"])


def test_a_store_held_by_a_process_is_running(tmp_path: Path) -> None:
    """A process that owns the store is a running daemon: exit 0, its pid named."""
    store = open_store(tmp_path)
    try:
        assert store.take_ownership()
        found = status.collect_status(tmp_path)
        assert 0 == status.exit_code(found)
        assert "daemon: running (pid" in status.render(found)
    finally:
        store.close()
    assert 3 == status.exit_code(status.collect_status(tmp_path))


def test_a_wedged_daemon_holds_the_store_but_is_not_running_in_json(tmp_path: Path) -> None:
    """A daemon that holds the store but stopped refreshing status: exit 0 (it is there), yet
    `running` is false in --json (the container health check turns unhealthy) and text says so."""
    store = open_store(tmp_path)
    try:
        assert store.take_ownership()
        (tmp_path / status.STATUS_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "running": True, "updated_at": time.time() - 300}))
        found = status.collect_status(tmp_path)
        assert (0, False) == (status.exit_code(found), found["running"])
        assert "the daemon hangs?" in status.render(found)
    finally:
        store.close()


def test_watch_redraws_in_place_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal each render clears the screen first; elsewhere renders follow each other."""
    sleeps: list[float] = []
    out = io.StringIO()
    code = status.watch(lambda: status.collect_status(tmp_path), out, tty=True,
                        sleep=sleeps.append, rounds=3)
    assert (3, [2.0, 2.0]) == (code, sleeps)
    assert 3 == out.getvalue().count("\x1b[H\x1b[2J")
    plain = io.StringIO()
    status.watch(lambda: status.collect_status(tmp_path), plain, sleep=sleeps.append, rounds=2)
    assert "\x1b" not in plain.getvalue()
    assert 2 == plain.getvalue().count("state directory:")


def test_watch_ends_quietly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C is how one leaves --watch: the last exit code, no traceback."""
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    assert 3 == status.watch(lambda: status.collect_status(tmp_path), io.StringIO(),
                             sleep=interrupted)


def test_startup_line_names_version_config_api_state_and_store(tmp_path: Path) -> None:
    """The start-up line says which runwatchd reads what, talks to whom, keeps state where."""
    from runwatchd import __version__

    cfg = parse_config({"folder": [{"path": str(tmp_path)}]}, "test")
    line = status.startup_line(cfg, "http://127.0.0.1:1", tmp_path)
    assert (f"runwatchd {__version__} ◆ config none (command line only) ◆ API "
            f"http://127.0.0.1:1 ◆ state dir {tmp_path} ◆ store SQLite "
            f"{tmp_path / 'journal.sqlite3'}") == line


def test_run_watch_without_c_ignores_a_config_found_by_chance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --watch DIR` uses only the command line unless a config is named."""
    import argparse

    from runwatchd.cli.common import command_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNWATCHD_CONFIG", raising=False)
    (tmp_path / "runwatchd.toml").write_text('[[folder]]\npath = "/elsewhere"\n')
    inbox = tmp_path / "inbox"
    args = argparse.Namespace(config=None, watch=[inbox])
    assert [inbox] == [f.path for f in command_config(args, [inbox]).folders]
    named = argparse.Namespace(config=tmp_path / "runwatchd.toml", watch=[inbox])
    assert {Path("/elsewhere"), inbox} == {f.path for f in command_config(named, [inbox]).folders}
