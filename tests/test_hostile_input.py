"""Hostile and odd input: every case has a defined outcome (listed in the README's Reliability
section), and none of them may block, crash or mislead the daemon.

Runs the daemon in a thread against the emulator; a recording transport shows which file names
reached the network, and hooks on it change a file while its upload runs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for
from hostile_helpers import Rig, has_sidecar, open_rig
from reliability_helpers import (
    daemon_thread,
    make_config,
    read_json,
    sha_of,
    sidecar_problems,
    temp_files,
    write_media,
)

from runwatchd.lifecycle import sidecar
from runwatchd.runway import media

SC = sidecar.sidecar_path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """An emulator, a client that records its requests, and every log record."""
    with open_rig(tmp_path) as r:
        yield r


# -- odd names, odd file types, links, sidecars, rules files --------------------------------------

def populate(hot: Path, outside: Path, p: str, rng: random.Random) -> dict[str, list[Path]]:
    """One of each odd input, names prefixed with `p`; returns the paths by expected outcome."""
    ok = [hot / f"{p}space name.png", hot / f"{p}ünïcødé 日本.png", hot / f"{p}new\nline.png",
          hot / f"-{p}dash.png", hot / f"--{p}help.jpg", hot / f"{p}edge.png"]
    for path in ok:
        write_media(path, 512 if path.name.endswith("edge.png") else 3000, rng)
    real = hot / f"{p}real.png"
    write_media(real, 4000, rng)
    (hot / f"{p}dir.png").mkdir()
    inner = hot / f"{p}dir.png" / f"{p}inner.png"
    write_media(inner, 2000, rng)
    outside_file = outside / f"{p}out.png"
    write_media(outside_file, 2500, rng)
    (hot / f"{p}link_in.png").symlink_to(real)
    (hot / f"{p}link_out.png").symlink_to(outside_file)
    os.link(real, hot / f"{p}hard.png")
    small = {hot / f"{p}zero.png": 0, hot / f"{p}tiny.png": 511}
    for path, size in small.items():
        write_media(path, size, rng)
    huge = hot / f"{p}huge.mp4"
    huge.touch()
    os.truncate(huge, media.MAX_SIZE + 1)  # sparse: 200 MiB + 1 byte, no disk used
    os.mkfifo(hot / f"{p}pipe.png")
    (hot / f"{p}loop1.png").symlink_to(hot / f"{p}loop2.png")
    (hot / f"{p}loop2.png").symlink_to(hot / f"{p}loop1.png")
    (hot / f"{p}self.png").symlink_to(hot / f"{p}self.png")
    (hot / f"{p}dangling.png").symlink_to(hot / "nowhere" / "gone.png")
    (hot / f"{p}loopdir").symlink_to(hot)  # a directory symlink loop
    return {
        "sidecar": ok + [real, inner, hot / f"{p}link_in.png", hot / f"{p}link_out.png",
                         hot / f"{p}hard.png"],
        "invalid": [*small, huge],
        "ignored": [hot / f"{p}pipe.png", hot / f"{p}loop1.png", hot / f"{p}loop2.png",
                    hot / f"{p}self.png", hot / f"{p}dangling.png"],
        "outside": [outside_file],
    }


def prepare_sidecars(hot: Path, rng: random.Random) -> dict[str, Path]:
    """Media that arrive with a sidecar already beside them: corrupt, stale, hand-edited."""
    cases = {name: hot / f"{name}.png" for name in ("corrupt", "binary", "stale", "trusted")}
    for path in cases.values():
        write_media(path, 1500, rng)
    SC(cases["corrupt"]).write_text('{"schema": 1, "runway_uri": ', encoding="utf-8")
    SC(cases["binary"]).write_bytes(b"\xff\xfe\x00garbage")
    st = os.stat(cases["stale"])
    old = sidecar.build_sidecar(cases["stale"], runway_uri="runway://upload/old-version",
                                uploaded_at=_now(), size=st.st_size - 1, mtime_ns=st.st_mtime_ns,
                                sha256="0" * 64)
    sidecar.write_sidecar(cases["stale"], old)
    st = os.stat(cases["trusted"])
    edited = sidecar.build_sidecar(cases["trusted"], runway_uri="runway://upload/edited-by-hand",
                                   uploaded_at=_now(), size=st.st_size, mtime_ns=st.st_mtime_ns,
                                   sha256=sha_of(cases["trusted"]))
    edited["note"] = "added by a person"
    SC(cases["trusted"]).write_text(json.dumps(edited, indent=2), encoding="utf-8")
    return cases


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_odd_input_outcomes(rig: Rig) -> None:
    """Odd names, tiny/empty/huge files, FIFOs, links, loops and odd sidecars: each ends as
    defined, both when found at start and when it arrives later."""
    outside = rig.base / "outside"
    outside.mkdir()
    early = populate(rig.hot, outside, "a_", rig.rng)
    sidecars = prepare_sidecars(rig.hot, rig.rng)
    trusted_before = SC(sidecars["trusted"]).read_bytes()
    outside_before = {p: p.read_bytes() for p in early["outside"]}
    cfg = make_config(rig.base, rig.hot, settle=0.2)
    with daemon_thread(cfg, rig.client, rig.base / "state") as run:
        late = populate(rig.hot, outside, "b_", rig.rng)
        outside_before.update({p: p.read_bytes() for p in late["outside"]})
        want = early["sidecar"] + late["sidecar"] + [sidecars["corrupt"], sidecars["binary"],
                                                     sidecars["stale"]]
        invalid = early["invalid"] + late["invalid"]

        def settled() -> bool:
            rows = [run.journal.get(p) for p in invalid]
            return has_sidecar(*want) and all(r is not None and r.state == "invalid" for r in rows)

        assert wait_for(settled, timeout=20, interval=0.05), [p.name for p in want if not
                                                               SC(p).exists()]
        # Nothing of the FIFO, loops or dangling links ever reaches a worker; give the late
        # ones' events time to be looked at before judging.
        wait_for(lambda: not len(run.daemon.table) and not run.daemon.scheduler.in_flight(),
                 timeout=5)
        errors = {p.name: (run.journal.get(p).error or "") for p in invalid}
        ignored_rows = {p.name: run.journal.get(p) for p in early["ignored"] + late["ignored"]}
        journal_paths = [r.path for r in run.journal]

    for path in want:
        assert [] == sidecar_problems(path)
    # Links are followed: a link's sidecar sits beside the link and describes the target's bytes.
    assert sha_of(rig.hot / "a_real.png") == read_json(SC(rig.hot / "a_link_in.png"))["file"][
        "sha256"]
    assert sha_of(rig.hot / "b_real.png") == read_json(SC(rig.hot / "b_hard.png"))["file"]["sha256"]
    # Nothing outside the root is written to or changed.
    assert [] == [p for p in outside.iterdir() if p.name.endswith(sidecar.SUFFIX)]
    assert outside_before == {p: p.read_bytes() for p in outside_before}
    # Too small, empty, too large: one clear reason each, no sidecar, never on the network.
    for name, error in errors.items():
        assert name.split("_", 1)[1] in error, error
    assert all(("below Runway's minimum" in e) for n, e in errors.items() if "huge" not in n)
    assert all(("above Runway's maximum" in e) for n, e in errors.items() if "huge" in n)
    invalid_names = {p.name for p in invalid}
    assert set() == invalid_names & rig.wire.names_sent()
    assert not any(has_sidecar(p) for p in invalid)
    # FIFO, symlink loops, dangling links: no sidecar, never uploaded, at most a journal note.
    ignored = early["ignored"] + late["ignored"]
    assert not any(SC(p).exists() for p in ignored)
    assert set() == {p.name for p in ignored} & rig.wire.names_sent()
    # A FIFO found by a scan is passed over; one that appears is reported once as what it is.
    notes = {name: (row.state, row.error) for name, row in ignored_rows.items() if row}
    assert {"b_pipe.png": ("invalid", "b_pipe.png: not a regular file (named pipe)")} == notes
    # A loop that appears is named once (b_loop1 may have been seen while still dangling).
    looped = " ".join(rig.logs.messages(logging.WARNING, "Too many levels of symbolic links"))
    assert (True, True) == ("b_self.png" in looped, "b_loop2.png" in looped or
                            "b_loop1.png" in looped)
    for fifo in (rig.hot / "a_pipe.png", rig.hot / "b_pipe.png"):
        with pytest.raises(OSError) as opened:  # ENXIO: nobody ever opened it for reading
            os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        assert errno.ENXIO == opened.value.errno
    # A directory named like media is a directory; the loop directory is never descended.
    assert not SC(rig.hot / "a_dir.png").exists()
    assert [] == [p for p in journal_paths if "loopdir" in p]
    sent = [s.filename for s in rig.wire.sent if s.filename]
    assert [] == [n for n in set(sent) if sent.count(n) > 1], "a file was uploaded twice"
    # Odd sidecars: corrupt or stale ones are replaced after a fresh upload; a valid one that
    # matches the file is trusted as it is (hand edits included), with no upload.
    for name in ("corrupt", "binary", "stale"):
        assert sidecars[name].name in rig.wire.names_sent()
    assert trusted_before == SC(sidecars["trusted"]).read_bytes()
    assert "trusted.png" not in rig.wire.names_sent()
    warned = rig.logs.messages(logging.WARNING, "sidecar")
    assert any("corrupt.png" in m and "not valid JSON" in m for m in warned)
    assert [] == temp_files(rig.base)


def test_broken_rules_file_holds_its_files_until_fixed(rig: Rig) -> None:
    """A rules file with bad TOML: its files wait (error names file, line and column), nothing
    is uploaded; once it is fixed they get its generation."""
    rules = rig.hot / "stills" / "runwatchd.rules.toml"
    rules.parent.mkdir()
    rules.write_text('endpoint = "image_to_video"\noutput_dir = [unclosed\n', encoding="utf-8")
    shot = rules.parent / "shot.png"
    write_media(shot, 2000, rig.rng)
    free = rig.hot / "free.png"
    write_media(free, 2000, rig.rng)
    cfg = make_config(rig.base, rig.hot, settle=0.1)
    with daemon_thread(cfg, rig.client, rig.base / "state",
                       backoff=lambda attempts: 0.3) as run:
        assert wait_for(lambda: SC(free).exists() and (r := run.journal.get(shot)) is not None
                        and r.attempts >= 2, timeout=10, interval=0.05)
        waiting = run.journal.get(shot)
        assert not SC(shot).exists()
        rules.write_text('endpoint = "image_to_video"\noutput_dir = "renders"\n[request]\n'
                         'model = "gen4.5"\npromptText = "{stem}"\nratio = "1280:720"\n'
                         'duration = 5\n', encoding="utf-8")
        assert wait_for(lambda: (read_json(SC(shot)) or {}).get("task", {}).get("status")
                        == "SUCCEEDED", timeout=15, interval=0.05)
    assert waiting.error.startswith(f"waiting: invalid rules file {rules}: line 2, column")
    assert 1 == sum(1 for s in rig.wire.sent if s.filename == "shot.png" and s.outcome == "200")
    assert 1 == rig.emu.stats()["tasks_created"]
    assert "task" not in read_json(SC(free))  # the folder's other files went on meanwhile
    assert [] == sidecar_problems(shot)


# -- files that change between detection and upload ------------------------------------------------

def test_file_changes_around_upload(rig: Rig) -> None:
    """Deleted while settling or while uploading, truncated or replaced while uploading: no
    sidecar ever claims content the file no longer has."""
    hot, rng = rig.hot, rig.rng
    cfg = make_config(rig.base, hot, settle=0.3)
    replacement = rng.randbytes(6000)
    rewrite = rng.randbytes(5000)

    def replace_by_rename() -> None:
        tmp = hot / ".replaced.png.new"
        tmp.write_bytes(replacement)
        os.replace(tmp, hot / "replaced.png")

    def rewrite_in_place() -> None:
        with open(hot / "rewritten.png", "r+b") as f:
            f.write(rewrite)

    rig.wire.before.update({
        "gone_mid.png": lambda: os.unlink(hot / "gone_mid.png"),
        "trunc_small.png": lambda: os.truncate(hot / "trunc_small.png", 100),
        "trunc_ok.png": lambda: os.truncate(hot / "trunc_ok.png", 1000),
        "replaced.png": replace_by_rename,
        "rewritten.png": rewrite_in_place,
    })
    with daemon_thread(cfg, rig.client, rig.base / "state") as run:
        early = hot / "gone_early.png"
        write_media(early, 3000, rng)
        assert wait_for(lambda: early in run.daemon.table, timeout=5, interval=0.005)
        early.unlink()  # detected, not yet settled
        old = {}
        for name, size in (("gone_mid.png", 3000), ("trunc_small.png", 4096),
                           ("trunc_ok.png", 8192), ("replaced.png", 6000),
                           ("rewritten.png", 5000)):
            write_media(hot / name, size, rng)
            old[name] = sha_of(hot / name)
        done = [hot / n for n in ("trunc_ok.png", "replaced.png", "rewritten.png")]

        def finished() -> bool:
            row = run.journal.get(hot / "trunc_small.png")
            return has_sidecar(*done) and row is not None and row.state == "invalid"

        assert wait_for(finished, timeout=20, interval=0.05)
        wait_for(lambda: not len(run.daemon.table) and not run.daemon.scheduler.in_flight(),
                 timeout=5)
        trunc_error = run.journal.get(hot / "trunc_small.png").error
        gone_rows = [run.journal.get(hot / n) for n in ("gone_early.png", "gone_mid.png")]
    objects = rig.emu.objects()
    for path in done:
        assert [] == sidecar_problems(path)  # describes the bytes the file has now
        data = read_json(SC(path))
        assert sha_of(path) == objects[data["runway_uri"]]["sha256"]
        assert old[path.name] != data["file"]["sha256"]
    new_sha = hashlib.sha256(replacement).hexdigest()
    assert new_sha == read_json(SC(hot / "replaced.png"))["file"]["sha256"]
    assert "100 bytes is below Runway's minimum" in trunc_error
    assert not any(SC(hot / n).exists() for n in ("gone_early.png", "gone_mid.png",
                                                    "trunc_small.png"))
    assert "gone_early.png" not in rig.wire.names_sent()
    assert [None, None] == [r if r is None else r.state for r in gone_rows]
    changed = rig.logs.messages(logging.INFO, "changed while uploading")
    assert 4 <= len(changed)
    assert [] == temp_files(rig.base)
