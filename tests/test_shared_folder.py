"""Two nodes, one share mounted at two places, one store: a file is one row and one upload.

Node A watches tmp/real, node B the same directory as tmp/link (a symlink to it: the second mount
point), both with share = "hot" and one store ([store] url: a SQLite file; the runs at once and
the take-over on PostgreSQL too), each with its own state dir and its store opened as the
commands open it (open_journal). The config resolves a folder's symlinks, so B's root is set
back to the link path after parsing: that is the path a host that mounts the share elsewhere
has. Polling observers, as on a NAS (inotify delivers no event to a root given as a symlink).
One after the other (scans), then at once (two daemons), then a dead node's work taken over."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import KEY, Runner, uploads
from helpers import drop, wait_for
from pipeline_helpers import RULE

from runwatchd.cli.common import open_journal
from runwatchd.config.load import Config, parse_config
from runwatchd.emulator import Emulator
from runwatchd.lifecycle.sidecar import read_sidecar, sidecar_path
from runwatchd.lifecycle.states import FileState
from runwatchd.store import FileRecord, open_store


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(api_secret=KEY) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNWATCHD_STORE_URL", raising=False)


def node_config(tmp_path: Path, node: str, root: Path, rule: dict[str, Any] | None,
                share: str | None = "hot", url: str | None = None) -> Config:
    """Node `node`'s config: its own state dir, the shared store (`url`, else one SQLite file),
    `root` as the share "hot"."""
    folder: dict[str, Any] = {"path": str(root)}
    if share is not None:
        folder["share"] = share
    if rule is not None:
        folder["rule"] = rule
    cfg = parse_config({
        "runway": {"concurrency": 2, "state_dir": str(tmp_path / node / "state")},
        "store": {"url": url or sqlite_url(tmp_path), "node": node,
                  "lease_seconds": 1.5},
        "defaults": {"settle_seconds": 0.05, "observer": "polling", "poll_interval": 0.05,
                     "rescan_interval": 0},
        "folder": [folder]}, node)
    # parse_config resolves symlinks; a host that mounts the share elsewhere has this path.
    return dataclasses.replace(cfg, folders=(dataclasses.replace(cfg.folders[0], path=root),))


def scan_on(tmp_path: Path, emu: Emulator, node: str, root: Path,
            rule: dict[str, Any] | None = None, share: str | None = "hot") -> int:
    """A `runwatchd scan` by node `node` on its store as the commands open it (open_journal)."""
    cfg = node_config(tmp_path, node, root, rule, share)
    runner = Runner(tmp_path / node, emu)
    _, journal = open_journal(cfg)
    try:
        return runner.scan(cfg, journal=journal)[0]
    finally:
        runner.close()
        journal.close()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'shared.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared store's URL: one SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    server = request.getfixturevalue("postgres_server")
    return str(server.url_of(request.getfixturevalue("postgres_db")))


def rows(tmp_path: Path, url: str | None = None) -> list[tuple[str, str, str | None]]:
    """(key, state, output_dir) of every row of the shared store, as stored."""
    store = open_store(tmp_path, url or sqlite_url(tmp_path))
    try:
        return sorted((r.path, r.state, r.output_dir) for r in store)
    finally:
        store.close()


@pytest.fixture
def mounts(tmp_path: Path) -> tuple[Path, Path]:
    """(the share as node A mounts it, the same directory as node B does)."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    return real, link


def test_the_second_node_skips_what_the_first_uploaded(tmp_path: Path, emu: Emulator,
                                                       mounts: tuple[Path, Path]) -> None:
    """One row keyed "hot/<name>" per file, one upload each: B finds A's rows at its mount."""
    real, link = mounts
    # Plain, non-ASCII, and not UTF-8 at all (a str with surrogates, as os.listdir gives it).
    names = ["day 1/shot.jpg", "día/ショット.jpg", os.fsdecode(b"caf\xe9/\xff.jpg")]
    shots = [drop(real / name) for name in names]
    assert 0 == scan_on(tmp_path, emu, "a", real)
    expected = sorted((f"hot/{name}", FileState.UPLOADED, None) for name in names)
    assert expected == rows(tmp_path)
    sidecars = [sidecar_path(shot).read_bytes() for shot in shots]
    assert 0 == scan_on(tmp_path, emu, "b", link)
    assert expected == rows(tmp_path)
    assert 3 == uploads(emu)
    assert sidecars == [sidecar_path(shot).read_bytes() for shot in shots]


def test_the_generation_is_submitted_by_one_node(tmp_path: Path, emu: Emulator,
                                                 mounts: tuple[Path, Path]) -> None:
    """With a rule: one upload, one task; the row's output_dir is a share key too."""
    real, link = mounts
    drop(real / "shot.jpg")
    assert 0 == scan_on(tmp_path, emu, "a", real, RULE)
    assert 0 == scan_on(tmp_path, emu, "b", link, RULE)
    assert [("hot/shot.jpg", FileState.SUCCEEDED, "hot/renders")] == rows(tmp_path)
    assert (1, 1) == (uploads(emu), emu.stats()["tasks_created"])
    assert ["shot.jpg.mp4"] == sorted(p.name for p in (real / "renders").iterdir())


@pytest.mark.parametrize("rule", [None, RULE], ids=["upload", "generation"])
def test_a_share_set_later_uploads_and_submits_nothing_again(
        tmp_path: Path, emu: Emulator, mounts: tuple[Path, Path],
        rule: dict[str, Any] | None) -> None:
    """A folder that gains a share on a restart: its old rows are not found, its files are
    adopted from their sidecars under the share key, nothing is uploaded or generated again."""
    real, _ = mounts
    shot = drop(real / "shot.jpg")
    assert 0 == scan_on(tmp_path, emu, "a", real, rule, share=None)
    before = rows(tmp_path)
    state = FileState.SUCCEEDED if rule else FileState.UPLOADED
    assert [str(shot)] == [key for key, _, _ in before]
    assert 0 == scan_on(tmp_path, emu, "a", real, rule)
    assert [("hot/shot.jpg", state)] == [(k, s) for k, s, _ in rows(tmp_path)
                                         if not k.startswith("/")]
    assert (1, 1 if rule else 0) == (uploads(emu), emu.stats()["tasks_created"])


def test_two_nodes_at_once_upload_and_submit_each_file_once(
        tmp_path: Path, emu: Emulator, mounts: tuple[Path, Path], store_url: str) -> None:
    """Both daemons running, each seeing the files at its own mount point: the leases are taken
    on the share keys, so each file is uploaded once and generated once."""
    real, link = mounts
    nodes = [(Runner(tmp_path / node, emu),
              node_config(tmp_path, node, root, RULE, url=store_url))
             for node, root in (("a", real), ("b", link))]
    journals = [open_journal(cfg)[1] for _, cfg in nodes]
    try:
        for (runner, cfg), journal in zip(nodes, journals):
            runner.start(cfg, journal=journal)
        shots = [drop(real / f"shot{n:02}.jpg") for n in range(16)]

        def succeeded() -> bool:
            return all((read_sidecar(s) or {}).get("task", {}).get("status") == "SUCCEEDED"
                       for s in shots)

        assert wait_for(succeeded, 60)
    finally:
        for runner, _ in nodes:
            runner.close()
        for journal in journals:
            journal.close()
    assert (16, 16) == (uploads(emu), emu.stats()["tasks_created"])
    assert [(f"hot/shot{n:02}.jpg", FileState.SUCCEEDED, "hot/renders") for n in range(16)] == (
        rows(tmp_path, store_url))


def dead_node(tmp_path: Path, cfg: Config, root: Path, share: str, name: str) -> None:
    """Node B, mounting `share` at `root`: leases `name` there, starts uploading it, and dies."""
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from runwatchd.store import FileRecord, open_store
        from runwatchd.store.shared_paths import SharedPaths
        store = SharedPaths(open_store(Path({str(tmp_path)!r}), {cfg.store.url!r}, node="b"),
                            {{Path({str(root)!r}): {share!r}}})
        path = Path({str(root)!r}) / {name!r}
        store.heartbeat(3600)
        assert store.lease(path, 3600) is None
        if store.get(path) is None:
            store.put_many([])
        else:
            store.update(path, state="failed")
        store.update(path, state="uploading", runway_uri=None)
        os._exit(0)  # no leave(): its lease stays, its pid is gone
        """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_dead_nodes_upload_is_taken_over_at_this_nodes_path(
        tmp_path: Path, emu: Emulator, mounts: tuple[Path, Path], store_url: str) -> None:
    """Node B (the link mount) leases a file and dies mid-upload; node A takes the row over by
    its share key and uploads the file again at its own path."""
    real, link = mounts
    runner = Runner(tmp_path / "a", emu)
    cfg = node_config(tmp_path, "a", real, None, url=store_url)
    _, journal = open_journal(cfg)
    try:
        runner.start(cfg, journal=journal)
        half = drop(real / "half.jpg")
        assert wait_for(lambda: sidecar_path(half).exists(), 30)
        sidecar_path(half).unlink()
        dead_node(tmp_path, cfg, link, "hot", "half.jpg")
        assert wait_for(lambda: sidecar_path(half).exists(), 30)
    finally:
        runner.close()
        journal.close()
    assert 2 == uploads(emu)
    assert [("hot/half.jpg", FileState.UPLOADED, None)] == rows(tmp_path, store_url)


def test_a_dead_nodes_file_on_a_share_not_mounted_here_is_left_alone(
        tmp_path: Path, emu: Emulator, mounts: tuple[Path, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    """A row of a share this node does not mount is no orphan of its: never taken over (its
    relative key would name a path below the daemon's working directory)."""
    real, _ = mounts
    elsewhere = tmp_path / "cold"
    drop(elsewhere / "far.jpg")
    store = open_store(tmp_path, sqlite_url(tmp_path))
    store.put(FileRecord(path="cold/far.jpg", state=FileState.UPLOADED))
    store.close()
    runner, cfg = Runner(tmp_path / "a", emu), node_config(tmp_path, "a", real, None)
    dead_node(tmp_path, cfg, elsewhere, "cold", "far.jpg")
    _, journal = open_journal(cfg)
    try:
        with caplog.at_level(logging.INFO, logger="runwatchd.daemon.claims"):
            runner.start(cfg, journal=journal)
            time.sleep(1.2)  # two beats of a 1.5 s lease, each asking for orphans
    finally:
        runner.close()
        journal.close()
    assert [] == [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
    assert [("cold/far.jpg", FileState.UPLOADING, None)] == rows(tmp_path)
    assert 0 == uploads(emu)
    assert not (real / "cold").exists()
