"""Hostile conditions on disk: permission denied until a chmod, a read-only folder and a full
disk when the sidecar is written. Every case keeps the upload and ends with its sidecar."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for
from hostile_helpers import Rig, has_sidecar, immutable, open_rig
from reliability_helpers import (
    daemon_thread,
    make_config,
    read_json,
    sidecar_problems,
    temp_files,
    write_media,
)

from runwatchd.lifecycle import sidecar

SC = sidecar.sidecar_path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """An emulator, a client that records its requests, and every log record."""
    with open_rig(tmp_path) as r:
        yield r


# -- permission denied -----------------------------------------------------------------------------

def test_permission_denied_until_chmod(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable file is skipped once with a clear reason and uploaded after a chmod."""
    locked = rig.hot / "locked.png"
    write_media(locked, 3000, rig.rng)
    locked.chmod(0o000)
    denied = {"on": True}
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a user
        real_open = os.open

        def open_as_user(path, flags, *args, **kwargs):
            if denied["on"] and os.fspath(path) == os.fspath(locked):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_as_user)
    cfg = make_config(rig.base, rig.hot, settle=0.2)
    with daemon_thread(cfg, rig.client, rig.base / "state") as run:
        assert wait_for(lambda: (r := run.journal.get(locked)) is not None
                        and r.state == "invalid", timeout=10, interval=0.05)
        error = run.journal.get(locked).error
        assert not SC(locked).exists()
        denied["on"] = False
        locked.chmod(0o644)  # the attrib event makes the daemon look again
        assert wait_for(lambda: SC(locked).exists(), timeout=10, interval=0.05)
    assert "locked.png: cannot read (Permission denied)" == error
    assert [] == sidecar_problems(locked)
    assert 1 == len(rig.logs.messages(logging.WARNING, "cannot read (Permission denied)"))


# -- sidecar cannot be written ---------------------------------------------------------------------

def test_read_only_folder_and_full_disk(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only folder or a full disk: a clear error, the upload kept in the journal, no temp
    file left; once writable, the sidecar appears with the same URI (no second upload)."""
    ro = rig.hot / "ro"
    ro.mkdir()
    shot = ro / "shot.png"
    write_media(shot, 3000, rig.rng)
    full = rig.hot / "full.png"
    write_media(full, 3000, rig.rng)
    disk = {"full": True}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}") if disk["full"] else ""
        if "full.png.runway.json" in target:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    immutable(ro, True)
    try:
        cfg = make_config(rig.base, rig.hot, settle=0.2)
        with daemon_thread(cfg, rig.client, rig.base / "state",
                           backoff=lambda attempts: 0.4) as run:
            def stuck() -> bool:
                rows = [run.journal.get(p) for p in (shot, full)]
                return all(r is not None and r.state == "no_sidecar" and r.attempts >= 2
                           for r in rows)

            assert wait_for(stuck, timeout=15, interval=0.05), [
                run.journal.get(p) for p in (shot, full)]
            rows = {p.name: run.journal.get(p) for p in (shot, full)}
            assert [] == temp_files(rig.base)
            immutable(ro, False)
            disk["full"] = False
            assert wait_for(lambda: has_sidecar(shot, full) and all(
                run.journal.get(p).state == "uploaded" for p in (shot, full)), timeout=15,
                interval=0.05)
            after = {p.name: run.journal.get(p) for p in (shot, full)}
    finally:
        immutable(ro, False)
    for name, row in rows.items():
        assert row.runway_uri and row.error.startswith("cannot write sidecar: "), row
        assert row.runway_uri == read_json(SC(rig.hot / ("ro/" if name == "shot.png" else "")
                                              / name))["runway_uri"]
        assert "uploaded" == after[name].state
    assert "No space left on device" in rows["full.png"].error
    assert ("Operation not permitted" in rows["shot.png"].error
            or "Permission denied" in rows["shot.png"].error)
    uploads = [s.filename for s in rig.wire.sent if s.filename and s.outcome == "200"]
    assert {"shot.png": 1, "full.png": 1} == {n: uploads.count(n) for n in ("shot.png", "full.png")}
    assert [] == sidecar_problems(shot) + sidecar_problems(full)
    assert [] == temp_files(rig.base)
