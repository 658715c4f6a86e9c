"""SharedPaths (store/shared_paths.py): keys by share name in, this host's paths out.

The row and claim contracts run through the adapter (their /hot paths become "hot/..." keys), then
round trips between two hosts that mount one share at different places, and hostile input."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from contract import ClaimContract, RowContract, StoreFactory, record, stored
from contract_leases import LeaseContract

from runwatchd.lifecycle.states import FileState
from runwatchd.store import FileRecord, Store, open_store
from runwatchd.store.shared_paths import SharedPaths, share_problem, shares_problem

HERE, THERE = Path("/mnt/nas/hot"), Path("/Volumes/hot")


class SharedFactory(StoreFactory):
    """StoreFactory whose handles (children's too) see /hot as the share "hot"."""

    def open(self, *, strict: bool = True) -> Store:
        return SharedPaths(super().open(strict=strict), {Path("/hot"): "hot"})

    def raw(self) -> Store:
        """A handle that sees the keys as stored."""
        return super().open()

    def child(self, body: str) -> Any:
        wrap = ("from runwatchd.store.shared_paths import SharedPaths\n"
                "store = SharedPaths(store, {Path('/hot'): 'hot'})\n")
        return super().child(wrap + textwrap.dedent(body))


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[StoreFactory]:
    """Handles through SharedPaths on a fresh SQLite store."""
    factory = SharedFactory(tmp_path / "state")
    yield factory
    factory.close()


class TestSharedRows(RowContract):
    """The row contract through SharedPaths."""


class TestSharedClaims(ClaimContract):
    """The at-most-once contract through SharedPaths."""


class TestSharedLeases(LeaseContract):
    """The lease contract through SharedPaths."""


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[Store]:
    """The SQLite store itself, keys as they are stored."""
    store = open_store(tmp_path / "state")
    yield store
    store.close()


def host(tmp_path: Path, root: Path) -> SharedPaths:
    """A handle as a host mounting the share "hot" at `root` has it (closed by the caller)."""
    return SharedPaths(open_store(tmp_path / "state"), {root: "hot"})


def test_a_path_under_a_share_is_stored_by_its_share_key(tmp_path: Path, raw: Store) -> None:
    """The row of /mnt/nas/hot/day 1/a.jpg is "hot/day 1/a.jpg", its output_dir a key too."""
    here = host(tmp_path, HERE)
    here.put(record(str(HERE / "day 1" / "a.jpg"), output_dir=str(HERE / "renders")))
    here.close()
    assert ["hot/day 1/a.jpg"] == [r.path for r in raw]
    assert {"hot/renders"} == raw.output_dirs()


def test_another_host_reads_the_row_at_its_own_mount_point(tmp_path: Path) -> None:
    """What /mnt/nas/hot wrote, /Volumes/hot reads back under /Volumes/hot, every way."""
    here, there = host(tmp_path, HERE), host(tmp_path, THERE)
    written = record(str(HERE / "d" / "a.jpg"), state=FileState.RUNNING, task_id="t1",
                     output_dir=str(HERE / "renders"), outputs=["a.jpg.mp4"])
    here.put(written)
    mine = str(THERE / "d" / "a.jpg")
    got = there.get(Path(mine))
    assert got is not None
    expected = {**asdict(written), "path": mine, "output_dir": str(THERE / "renders")}
    assert expected == asdict(got)
    assert [mine] == [r.path for r in there.in_state(FileState.RUNNING)]
    assert [mine] == [r.path for r in there]
    assert {mine: ("running", 600, 1, 2)} == there.signatures()
    assert ("running", 600, 1, 2) == there.signature(mine)
    assert {str(THERE / "renders")} == there.output_dirs()
    here.close()
    there.close()


def test_writes_by_local_path_reach_the_shared_row(tmp_path: Path, raw: Store) -> None:
    """update, update_if, claim_submit and delete by either host's path act on one row."""
    here, there = host(tmp_path, HERE), host(tmp_path, THERE)
    here.put(record(str(HERE / "a.jpg"), state=FileState.ATTENTION))
    assert there.update_if(THERE / "a.jpg", FileState.ATTENTION, state=FileState.RETRY)
    changed = there.update(str(THERE / "a.jpg"), output_dir=str(THERE / "out"))
    assert changed is not None
    assert (str(THERE / "a.jpg"), str(THERE / "out")) == (changed.path, changed.output_dir)
    assert "hot/out" == stored(raw, "hot/a.jpg").output_dir
    assert None is here.claim_submit(record(str(HERE / "a.jpg")))
    holder = there.claim_submit(record(str(THERE / "a.jpg")))
    assert holder is not None
    assert (str(THERE / "a.jpg"), FileState.SUBMITTING) == (holder.path, holder.state)
    there.delete(THERE / "a.jpg")
    assert [] == list(raw)
    here.close()
    there.close()


def test_the_callers_record_gets_what_the_store_filled_in(tmp_path: Path) -> None:
    """put sets updated_at and claim_submit the state on the caller's record, paths kept."""
    here = host(tmp_path, HERE)
    mine = record(str(HERE / "a.jpg"))
    here.put(mine)
    assert (0.0 < mine.updated_at, str(HERE / "a.jpg")) == (True, mine.path)
    claimed = record(str(HERE / "b.jpg"), state=FileState.TO_SUBMIT)
    assert None is here.claim_submit(claimed)
    assert (FileState.SUBMITTING, str(HERE / "b.jpg")) == (claimed.state, claimed.path)
    many = [record(str(HERE / f"{i}.jpg"), state=FileState.UPLOADED) for i in range(3)]
    here.put_many(many)
    assert [str(HERE / f"{i}.jpg") for i in range(3)] == [r.path for r in many]
    assert all(0.0 < r.updated_at for r in many)
    here.close()


def test_paths_outside_every_share_are_stored_as_they_are(tmp_path: Path, raw: Store) -> None:
    """A path under no shared root, or leaving one by "..", keeps its absolute-path row."""
    here = host(tmp_path, HERE)
    for path in ("/elsewhere/a.jpg", "/mnt/nas/hotter/b.jpg", "/mnt/nas/hot/../c.jpg"):
        here.put(FileRecord(path=path, state=FileState.UPLOADED))
        assert path == stored(here, path).path
    here.close()
    assert ["/elsewhere/a.jpg", "/mnt/nas/hot/../c.jpg", "/mnt/nas/hotter/b.jpg"] == sorted(
        r.path for r in raw)


def test_keys_this_host_cannot_place_stay_keys(tmp_path: Path, raw: Store) -> None:
    """A share not mounted here, or a key with "..", empty or "." parts, is never made local."""
    keys = ["cold/a.jpg", "hot/../../etc/passwd", "hot//a.jpg", "hot/./a.jpg", "hotter/a.jpg"]
    raw.put_many([FileRecord(path=k, state=FileState.UPLOADED) for k in keys])
    here = host(tmp_path, HERE)
    assert sorted(keys) == sorted(r.path for r in here)
    assert sorted(keys) == sorted(here.signatures())
    here.close()


def test_unicode_and_undecodable_names_round_trip(tmp_path: Path, raw: Store) -> None:
    """Non-ASCII names and names that are not UTF-8 (surrogates) come back the same."""
    here, there = host(tmp_path, HERE), host(tmp_path, THERE)
    names = ["día/ショット.jpg", os.fsdecode(b"caf\xe9/\xff\xfe.jpg")]
    for name in names:
        here.put(FileRecord(path=str(HERE / name), state=FileState.UPLOADED))
    assert sorted(str(THERE / n) for n in names) == sorted(r.path for r in there)
    for name in names:
        assert FileState.UPLOADED == stored(there, str(THERE / name)).state
        assert FileState.UPLOADED == stored(raw, f"hot/{name}").state
    here.close()
    there.close()


def test_a_row_from_before_the_share_is_seen_by_no_read(tmp_path: Path, raw: Store) -> None:
    """A row keyed by the absolute path under a shared root: get() cannot find it, nor can any
    read that hands out paths (a caller acting on it could never write it back)."""
    legacy = str(HERE / "a.jpg")
    raw.put(FileRecord(path=legacy, state=FileState.RUNNING, error="old", task_id="t0"))
    raw.put(FileRecord(path="hot/b.jpg", state=FileState.RUNNING, error="new", task_id="t1"))
    here = host(tmp_path, HERE)
    b = str(HERE / "b.jpg")
    assert None is here.get(legacy)
    assert [b] == [r.path for r in here.in_state(FileState.RUNNING)]
    assert [b] == [r.path for r in here]
    assert [b] == list(here.signatures())
    assert [b] == [r.path for r in here.recent_errors()]
    assert {"running": 2} == here.counts()
    here.close()


def test_nested_roots_take_the_deepest_share(tmp_path: Path, raw: Store) -> None:
    """A file under two shared roots is named by the deeper one's share."""
    both = SharedPaths(open_store(tmp_path / "state"), {HERE: "hot", HERE / "deep": "deep"})
    both.put(FileRecord(path=str(HERE / "deep" / "a.jpg"), state=FileState.UPLOADED))
    both.put(FileRecord(path=str(HERE / "b.jpg"), state=FileState.UPLOADED))
    assert ["deep/a.jpg", "hot/b.jpg"] == sorted(r.path for r in raw)
    assert sorted([str(HERE / "deep" / "a.jpg"), str(HERE / "b.jpg")]) == sorted(
        r.path for r in both)
    both.close()


@pytest.mark.parametrize(("name", "why"), [
    ("", "must not be empty"), ("  ", "must not be empty"),
    ("/hot", 'must not start or end with "/"'), ("hot/", 'must not start or end with "/"'),
    ("..", 'must not have an empty, "." or ".." part'),
    ("a/../b", 'must not have an empty, "." or ".." part'),
    ("a//b", 'must not have an empty, "." or ".." part'),
    ("a\x00b", "must not contain control characters"),
    ("a\nb", "must not contain control characters"), (7, "expected a string"),
])
def test_hostile_share_names_are_refused(name: object, why: str) -> None:
    """A share name that could leave a root or be taken for a path is refused."""
    problem = share_problem(name)
    assert problem is not None
    assert why == problem[:len(why)]


@pytest.mark.parametrize("name", ["hot", "studio/hot", "Été 2026", "a.b", "..x"])
def test_plain_share_names_are_fine(name: str) -> None:
    """Words, inner slashes, non-ASCII and dots inside a part are share names."""
    assert None is share_problem(name)


def test_shares_must_be_unique_and_not_nested() -> None:
    """Two folders of one share, or a share inside another, would make one key two files."""
    assert "share 'hot' is named twice" == shares_problem(["hot", "hot"])
    assert "share 'a/b' is inside share 'a'" == shares_problem(["a/b", "a"])
    assert None is shares_problem(["a", "ab", "b/a"])


def test_the_adapter_refuses_what_the_config_would(tmp_path: Path, raw: Store) -> None:
    """SharedPaths itself refuses bad names, relative roots and clashing shares."""
    for shares in ({HERE: ".."}, {Path("rel"): "hot"}, {HERE: "hot", THERE: "hot"}):
        with pytest.raises(ValueError):
            SharedPaths(raw, shares)


class Leases:
    """An inner store that records the keys leases are asked for (rows: a real SQLite store)."""

    def __init__(self, rows: Store) -> None:
        self.rows, self.asked = rows, []

    def lease(self, path: object, seconds: float) -> str | None:
        self.asked.append(("lease", path, seconds))
        return "other-node" if path == "hot/held.jpg" else None

    def release(self, path: object) -> None:
        self.asked.append(("release", path))

    def take_orphans(self, states: Any, seconds: float, limit: int = 500) -> list[FileRecord]:
        return [r for r in self.rows.in_state(*states)][:limit]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rows, name)


def test_leases_are_taken_on_share_keys(tmp_path: Path, raw: Store) -> None:
    """lease/release name the key; take_orphans hands back this host's paths."""
    inner = Leases(raw)
    here = SharedPaths(inner, {HERE: "hot"})  # type: ignore[arg-type]
    assert None is here.lease(HERE / "a.jpg", 30.0)
    assert "other-node" == here.lease(str(HERE / "held.jpg"), 30.0)
    here.release(HERE / "a.jpg")
    assert [("lease", "hot/a.jpg", 30.0), ("lease", "hot/held.jpg", 30.0),
            ("release", "hot/a.jpg")] == inner.asked


def test_orphans_this_host_cannot_reach_are_released(tmp_path: Path, raw: Store) -> None:
    """take_orphans keeps rows at this host's paths and releases the others' leases at once:
    a share not mounted here, and a row from before the share (no read finds it)."""
    inner = Leases(raw)
    here = SharedPaths(inner, {HERE: "hot"})  # type: ignore[arg-type]
    for path in ("hot/x.jpg", "cold/y.jpg", str(HERE / "old.jpg"), "/elsewhere/z.jpg"):
        raw.put(record(path, state=FileState.UPLOADING, output_dir="hot/renders"))
    orphans = here.take_orphans([FileState.UPLOADING], 30.0)
    assert [("/elsewhere/z.jpg", str(HERE / "renders")),
            (str(HERE / "x.jpg"), str(HERE / "renders"))] == sorted(
        (r.path, r.output_dir) for r in orphans)
    assert [("release", str(HERE / "old.jpg")), ("release", "cold/y.jpg")] == sorted(
        inner.asked)


def test_pass_through_answers_come_from_the_inner_store(tmp_path: Path, raw: Store) -> None:
    """counts, owner, take_ownership and check_intact are the inner store's; errors local."""
    here = SharedPaths(raw, {HERE: "hot"})
    raw.put(FileRecord(path="hot/a.jpg", state=FileState.FAILED, error="boom"))
    assert ({"failed": 1}, None) == (here.counts(), here.check_intact())
    assert here.take_ownership() is True
    assert os.getpid() == getattr(here.owner(), "pid", None)
    assert [str(HERE / "a.jpg")] == [r.path for r in here.recent_errors()]


def test_roots_are_taken_normalised(tmp_path: Path, raw: Store) -> None:
    """A root given as "/mnt/nas//hot/" is /mnt/nas/hot: its files get share keys."""
    here = SharedPaths(raw, {"/mnt/nas//hot/": "hot"})  # type: ignore[dict-item]
    here.put(FileRecord(path=str(HERE / "a.jpg"), state=FileState.UPLOADED))
    assert ["hot/a.jpg"] == [r.path for r in raw]
    assert [str(HERE / "a.jpg")] == [r.path for r in here]
