"""Two nodes' daemons on one PostgreSQL store and one folder (in-process): each owns for its node,
and the leases make them one: each file uploaded once, each generation submitted once."""

from __future__ import annotations

from pathlib import Path

from daemon_helpers import Runner, uploads
from helpers import drop, wait_for
from postgres_helpers import PostgresServer
from test_shared_store import rule, task_status

from runwatchd.store import open_store


def test_two_nodes_on_one_postgres_store_upload_and_submit_each_file_once(
        runner: Runner, tmp_path: Path, postgres_server: PostgresServer,
        postgres_db: str) -> None:
    """Nodes alpha and beta (one daemon each, both owners of their node) share the files: 12
    files, 12 uploads, 12 tasks, and both are listed alive while they run."""
    hot = tmp_path / "hot"
    hot.mkdir()
    url = postgres_server.url_of(postgres_db)
    stores = [open_store(tmp_path, url, node=node) for node in ("alpha", "beta")]
    try:
        cfg = runner.config([{"path": str(hot), "rule": rule()}], concurrency=2,
                            rescan_interval=0, settle_seconds=0.05)
        for store in stores:
            runner.start(cfg, journal=store, poll_interval=0.05)
        files = [drop(hot / f"shot{n:02}.jpg") for n in range(12)]
        assert wait_for(lambda: all(task_status(f) == "SUCCEEDED" for f in files), 60)
        assert (12, 12) == (uploads(runner.emu), runner.emu.stats()["tasks_created"])
        assert ["alpha", "beta"] == [getattr(s.owner(), "node", None) for s in stores]
        assert [("alpha", True), ("beta", True)] == sorted(
            (h.node, h.alive) for h in stores[0].holders())
        runner.close()
    finally:
        for store in stores:
            store.close()
