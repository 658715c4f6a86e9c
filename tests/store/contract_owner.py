"""The Store contract, continued: ownership, the transition check and the read-only view.

Used like contract.py: a backend's test module subclasses these with its `store_factory`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable

import pytest
from contract import CHILD_TIMEOUT, PATH, StoreFactory, record, stored, wait_for_line

from runwatchd.lifecycle.states import FileState, TransitionError
from runwatchd.store import FileRecord, Store

S = FileState


def eventually_owns(store: Store) -> bool:
    """take_ownership() retried for a while: a dead owner's hold may take a moment to go (a
    database notices a killed client's connection shortly after the kernel closed it)."""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not store.take_ownership():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class OwnershipContract:
    """One owner per store: refused to a second taker, released on close and on death.

    PostgreSQL's meaning is one owner per node name (several nodes each run a daemon on one
    store: test_postgres_leases.py shows that); these handles all open with the default node,
    the host name, so the same tests hold for both backends unchanged."""

    def test_one_owner_at_a_time(self, store_factory: StoreFactory) -> None:
        """The first taker owns it (asking again says so); a second is refused until close."""
        first, second = store_factory.open(), store_factory.open()
        assert first.take_ownership() is True
        assert first.take_ownership() is True
        assert second.take_ownership() is False
        first.close()
        assert second.take_ownership() is True

    def test_owner_names_the_owning_process(self, store_factory: StoreFactory) -> None:
        """owner() names this process and host while it owns the store, nobody after close."""
        first, second = store_factory.open(), store_factory.open()
        assert None is second.owner()
        first.take_ownership()
        info = second.owner()
        assert info is not None
        assert (os.getpid(), socket.gethostname()) == (info.pid, info.node)
        assert info.since is not None
        first.close()
        assert None is second.owner()

    def test_ownership_goes_with_a_killed_owner(self, store_factory: StoreFactory) -> None:
        """SIGKILL of the owning process releases it: no cooperation of the owner is needed."""
        store = store_factory.open()
        child = store_factory.child("print(store.take_ownership(), flush=True)\ntime.sleep(60)\n")
        try:
            wait_for_line(child, "True")
            assert store.take_ownership() is False
            info = store.owner()
            assert child.pid == (info.pid if info else None)
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=CHILD_TIMEOUT)
        assert eventually_owns(store) is True
        info = store.owner()
        assert os.getpid() == (info.pid if info else None)


# (name, old state of the row, write): a write the lifecycle does not allow after that state.
BAD_WRITES: list[tuple[str, str, Callable[[Store], object]]] = [
    ("put", S.SUCCEEDED, lambda s: s.put(record(state=S.RUNNING))),
    ("put_many", S.SUCCEEDED, lambda s: s.put_many([record("/hot/new.jpg", S.UPLOADED),
                                                    record(state=S.RUNNING)])),
    ("update", S.SUCCEEDED, lambda s: s.update(PATH, state=S.RUNNING)),
    ("update_if", S.SUCCEEDED, lambda s: s.update_if(PATH, S.SUCCEEDED, state=S.RUNNING)),
    ("put_unless_claimed", S.UPLOADING,
     lambda s: s.put_unless_claimed(record(state=S.RUNNING))),
    ("claim_submit", S.INVALID, lambda s: s.claim_submit(record())),
]


class TransitionContract:
    """Every write is checked against lifecycle.states.TRANSITIONS, old state read with it."""

    @pytest.mark.parametrize(("old", "write"), [(o, w) for _, o, w in BAD_WRITES],
                             ids=[name for name, _, _ in BAD_WRITES])
    def test_strict_refuses_a_disallowed_write(self, store_factory: StoreFactory, old: str,
                                               write: Callable[[Store], object]) -> None:
        """In strict mode a disallowed transition raises and writes nothing (the whole batch)."""
        store = store_factory.open(strict=True)
        store.put(record(state=old))
        with pytest.raises(TransitionError):
            write(store)
        assert old == stored(store).state
        assert None is store.get("/hot/new.jpg")

    def test_strict_allows_the_lifecycle(self, store_factory: StoreFactory) -> None:
        """A file's ordinary way through the states, rewrites of a state included, passes."""
        store = store_factory.open(strict=True)
        store.put(record(state=S.UPLOADING))
        store.update(PATH, state=S.TO_SUBMIT)
        assert None is store.claim_submit(record())
        store.update(PATH, state=S.RUNNING, task_id="t1")
        store.update(PATH, task_status="RUNNING")
        store.update_if(PATH, S.RUNNING, state=S.SUCCEEDED)
        assert S.SUCCEEDED == stored(store).state

    def test_strict_refuses_an_unknown_state(self, store_factory: StoreFactory) -> None:
        """A state the lifecycle does not know is refused like a disallowed transition."""
        store = store_factory.open(strict=True)
        with pytest.raises(TransitionError):
            store.put(FileRecord(path=PATH, state="bogus"))

    def test_lenient_writes_and_warns_once_per_pair(self, store_factory: StoreFactory,
                                                    caplog: pytest.LogCaptureFixture) -> None:
        """Production mode loses no work: the write happens, with one warning per (old, new)."""
        store = store_factory.open(strict=False)
        with caplog.at_level(logging.WARNING):
            for path in ("/a.jpg", "/b.jpg"):
                store.put(record(path, S.SUCCEEDED))
                store.put(record(path, S.RUNNING))
            store.update("/a.jpg", state=S.SUCCEEDED)
            store.update("/a.jpg", state=S.UPLOADING)
            store.update("/a.jpg", state=S.RUNNING)
        assert {"/a.jpg": S.RUNNING, "/b.jpg": S.RUNNING} == {r.path: r.state for r in store}
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert 2 == len(warned)
        assert "succeeded -> running" in warned[0]
        assert "uploading -> running" in warned[1]


class ViewContract:
    """The read-only view status uses: sees committed writes, never creates a store."""

    def test_view_of_a_store_never_opened(self, store_factory: StoreFactory) -> None:
        """A view where no store exists yet reads as empty."""
        view = store_factory.view()
        assert ({}, [], [], None) == (view.counts(), view.recent_errors(), view.in_state("failed"),
                                      view.owner())

    def test_view_sees_what_the_store_committed(self, store_factory: StoreFactory) -> None:
        """counts, the newest errors first (up to the limit), rows by state and the owner."""
        store = store_factory.open()
        for i in range(3):
            store.put(record(f"/{i}.jpg", S.FAILED, error=f"boom {i}"))
        store.put(record("/ok.jpg", S.UPLOADED))
        store.take_ownership()
        view = store_factory.view()
        assert {"failed": 3, "uploaded": 1} == view.counts()
        assert ["/2.jpg", "/1.jpg"] == [r.path for r in view.recent_errors(2)]
        assert "boom 2" == view.recent_errors()[0].error
        assert ["/ok.jpg"] == [r.path for r in view.in_state(S.UPLOADED)]
        info = view.owner()
        assert os.getpid() == (info.pid if info else None)
        store.put(record("/late.jpg", S.UPLOADED))
        assert 2 == view.counts()["uploaded"]
