"""`runwatchd status` shows the cluster: every process that works on the store (node, pid,
version, last heartbeat as an age, in flight, alive or not), whichever node asks, for a shared
PostgreSQL store and for SQLite (a daemon and a scan beside it)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from postgres_helpers import PostgresServer

from runwatchd.cli import main as cli
from runwatchd.store import Store, open_store

# Every test here leaves the process's logging as it found it.
pytestmark = pytest.mark.usefixtures("restore_logging")


def _config(tmp_path: Path, node: str | None = None, url: str | None = None) -> Path:
    path = tmp_path / f"{node or 'local'}.toml"
    store = "".join([f'url = "{url}"\n' if url else "", f'node = "{node}"\n' if node else ""])
    path.write_text(f'[runway]\nstate_dir = "{tmp_path / (node or "state")}"\n'
                    + (f"[store]\n{store}" if store else "")
                    + f'[[folder]]\npath = "{tmp_path / "in"}"\n')
    return path


def wait_until_dead(store: Store, node: str) -> None:
    """The server drops a closed connection's locks a moment after the client closed it."""
    deadline = time.monotonic() + 10.0
    while any(h.node == node and h.alive for h in store.holders()):
        assert time.monotonic() < deadline, f"{node} still alive"
        time.sleep(0.02)


def _status(config: Path, capsys: pytest.CaptureFixture[str],
            *extra: str) -> tuple[int, str]:
    code = cli.main(["status", "-c", str(config), *extra])
    return code, capsys.readouterr().out


def test_every_node_sees_the_whole_cluster(tmp_path: Path, postgres_server: PostgresServer,
                                           postgres_db: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes beat on one PostgreSQL store, a third died: status asked on any node (or on
    one that runs nothing) lists all three, alive or not; only the asker's owner counts for
    the exit code."""
    monkeypatch.delenv("RUNWATCHD_STORE_URL", raising=False)
    url = postgres_server.url_of(postgres_db)
    stores: list[Store] = []
    try:
        for node, in_flight in (("alpha", 2), ("beta", 0), ("gamma", 5)):
            store = open_store(tmp_path, url, node=node)
            stores.append(store)
            store.heartbeat(60.0, in_flight=in_flight, version="9.9")
        stores[0].take_ownership()
        stores.pop().close()  # gamma dies without leave(): listed dead
        wait_until_dead(stores[0], "gamma")
        expected = [("alpha", True, 2), ("beta", True, 0), ("gamma", False, 5)]
        for asker, code in (("alpha", 0), ("beta", 3), ("delta", 3)):
            assert (code, asker) == (cli.main(["status", "-c", str(_config(tmp_path, asker, url)),
                                                "--json"]), asker)
            found = json.loads(capsys.readouterr().out)
            assert asker == found["node"]
            assert expected == sorted((h["node"], h["alive"], h["in_flight"])
                                      for h in found["holders"])
            assert {(os.getpid(), "9.9")} == {(h["pid"], h["version"]) for h in found["holders"]}
            assert all(0.0 <= h["heartbeat_age"] < 30.0 for h in found["holders"])
            assert all(h["heartbeat_at"].endswith("Z") for h in found["holders"])
        code, text = _status(_config(tmp_path, "beta", url), capsys)
        assert 3 == code
        assert "daemon: not running on node beta (no process of this node holds the store)" in text
        assert "cluster: 3 processes (2 alive)" in text
        # The age is whole seconds since the beat: 0 or more on a loaded machine.
        assert re.search(rf"  alpha pid {os.getpid()} runwatchd 9\.9: alive, last heartbeat "
                         r"\d+ s ago, in flight 2", text)
        assert re.search(rf"  gamma pid {os.getpid()} runwatchd 9\.9: DEAD, last heartbeat "
                         r"\d+ s ago, in flight 5", text)
    finally:
        for store in stores:
            store.close()


def test_no_holder_no_cluster_lines(tmp_path: Path, postgres_server: PostgresServer,
                                    postgres_db: str, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A store nobody beats on (or never created): no cluster line, holders [] in --json."""
    monkeypatch.delenv("RUNWATCHD_STORE_URL", raising=False)
    config = _config(tmp_path, "alpha", postgres_server.url_of(postgres_db))
    code, text = _status(config, capsys)
    assert (3, False) == (code, "cluster:" in text)
    assert [] == json.loads(_status(config, capsys, "--json")[1])["holders"]


def test_sqlite_lists_the_daemon_and_a_scan_beside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One host, one journal: the daemon and a scan beside it both beat, both are listed; the
    scan leaves and is gone from the list."""
    monkeypatch.delenv("RUNWATCHD_STORE_URL", raising=False)
    config = _config(tmp_path)
    daemon, scan = open_store(tmp_path / "state"), open_store(tmp_path / "state")
    try:
        assert daemon.take_ownership()
        daemon.heartbeat(60.0, in_flight=1, version="9.9")
        scan.heartbeat(60.0, in_flight=4, version="9.9")
        code, text = _status(config, capsys, "--json")
        found = json.loads(text)
        assert 0 == code
        assert {(daemon.holder, 1), (scan.holder, 4)} == {
            (h["holder"], h["in_flight"]) for h in found["holders"]
            if h["alive"] and h["pid"] == os.getpid()}
        scan.leave()
        code, text = _status(config, capsys)
        assert "cluster: 1 process (1 alive)" in text
    finally:
        scan.close()
        daemon.close()
