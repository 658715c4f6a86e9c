"""Issue 11's third acceptance run: `runwatchd scan` beside a running daemon, on the same folder
and the same store, uploads nothing twice and submits nothing twice: for the SQLite store of one
host (the default, in the state dir they share) and for PostgreSQL.

The scan starts while the daemon is still busy with the files (checked: some have no sidecar
yet), so the two race for most of them. Both must end with every file done once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import (
    bad_sidecars,
    cluster,
    done,
    make_files,
    not_done,
    stored_twice,
    stray_outputs,
    tasks_by_status,
    tasks_per_content,
    tracebacks,
    unnamed_uploads,
    view_of,
    wait_done,
)
from postgres_helpers import PostgresServer

from runwatchd.emulator import Emulator

FILES = 300


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """The [store] section: none (SQLite in the state dir), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return {"url": server.url_of(request.getfixturevalue("postgres_db"))}


def test_scan_beside_a_daemon_uploads_and_submits_nothing_twice(
        tmp_path: Path, emulator: Emulator, store: dict[str, Any] | None) -> None:
    """A daemon and `scan` on one folder and store, 300 files: each stored once, one task each."""
    with cluster(tmp_path, emulator, store) as c:
        (node,) = c.start(1)
        files = make_files(c.hot, (f"shot{i:03d}.png" for i in range(FILES)))
        scan = subprocess.Popen(
            [sys.executable, "-m", "runwatchd", "scan", "-c", str(node.config)], env=node.env,
            cwd=node.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            before_scan = done(files, rule=False)
            _out, err = scan.communicate(timeout=60)
        finally:
            if scan.poll() is None:
                scan.kill()
                scan.wait(10)
        finished = wait_done(files, 40)
        assert node.alive(), c.logs()
        url = None if store is None else store["url"]
        with view_of(url, node.state) as view:
            counts = view.counts()
            unfinished = not_done(files, view)
        logs = c.logs()
    assert before_scan < FILES, "the daemon was done before the scan began: no race"
    assert {} == stored_twice(files, emulator)
    assert {} == unfinished, f"{finished} of {FILES} done:\n{logs}\n{err[-3000:]}"
    assert 0 == scan.returncode, err[-4000:]
    assert FILES == finished, logs
    assert {} == {n: k for n, k in tasks_per_content(files, emulator).items() if k != 1}
    assert {"SUCCEEDED": FILES} == tasks_by_status(emulator)
    assert [] == stray_outputs(files)
    assert {} == bad_sidecars(files)
    assert {} == unnamed_uploads(files, emulator)
    assert {"succeeded": FILES} == counts
    assert {} == tracebacks([node])
    assert "Traceback" not in err, err[-4000:]
