"""The Store contract, continued: leases, heartbeats, orphans and holders (store/base.py).

Used like contract.py: a backend's test module subclasses LeaseContract with its
`store_factory`. Expiry is real time with short leases (0.3 s) and a short sleep, so the
contract holds whatever clock a backend reads (PostgreSQL reads the server's). A holder proven
dead is a SIGKILLed child process: both backends can prove that (SQLite: its pid is gone;
PostgreSQL: its advisory lock went with its connection).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from contract import CHILD_TIMEOUT, StoreFactory, record

from runwatchd.lifecycle.states import FileState
from runwatchd.store import Store, StoreView
from runwatchd.store.base import HolderInfo

S = FileState
A, B = "/hot/a.jpg", "/hot/b.jpg"
SHORT = 0.3  # a lease that ends within a test
PAST_SHORT = 0.45  # sleep this long and a SHORT lease has ended
LONG = 60.0  # a lease that outlives a test


def node_of(store: Store) -> str:
    """The node part of a handle's holder id ("<node>:<pid>:<tag>")."""
    return store.holder.rsplit(":", 2)[0]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """check() retried until true or `timeout` passed: a killed process's hold may take a moment
    to go (a database notices a closed connection shortly after the kernel closed it)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def holder_info(view: StoreView | Store, holder: str) -> HolderInfo | None:
    return next((h for h in view.holders() if h.holder == holder), None)


class LeaseContract:
    """Leases: one holder per path at a time, ended by release, expiry or proven death."""

    def test_holder_ids_name_node_and_pid(self, store_factory: StoreFactory) -> None:
        """Each handle is its own holder "<node>:<pid>:<tag>", fixed for its life."""
        first, second = store_factory.open(), store_factory.open()
        node, pid, tag = first.holder.rsplit(":", 2)
        assert (str(os.getpid()), True) == (pid, bool(node and tag))
        assert first.holder == first.holder
        assert first.holder != second.holder

    def test_lease_renew_and_held_by_another(self, store_factory: StoreFactory) -> None:
        """A free path (no row needed) is leased; renewing is fine; another gets the node."""
        first, second = store_factory.open(), store_factory.open()
        assert None is first.lease(A, LONG)
        assert None is first.lease(A, LONG)
        assert node_of(first) == second.lease(A, LONG)
        assert None is second.lease(B, LONG)
        assert None is first.get(A)

    def test_release_frees_only_ones_own(self, store_factory: StoreFactory) -> None:
        """release() ends this holder's lease; releasing another's lease changes nothing."""
        first, second = store_factory.open(), store_factory.open()
        first.lease(A, LONG)
        second.release(A)
        assert node_of(first) == second.lease(A, LONG)
        first.release(A)
        first.release(B)  # never leased: no error
        assert None is second.lease(A, LONG)
        assert node_of(second) == first.lease(A, LONG)

    def test_an_expired_lease_is_taken_over(self, store_factory: StoreFactory) -> None:
        """A lease not renewed within its seconds ends: another holder gets the path."""
        first, second = store_factory.open(), store_factory.open()
        assert None is first.lease(A, SHORT)
        assert node_of(first) == second.lease(A, LONG)
        time.sleep(PAST_SHORT)
        assert None is second.lease(A, LONG)
        assert node_of(second) == first.lease(A, LONG)

    def test_heartbeat_extends_every_lease(self, store_factory: StoreFactory) -> None:
        """heartbeat(seconds) carries all of the holder's leases to now + seconds."""
        first, second = store_factory.open(), store_factory.open()
        first.lease(A, SHORT)
        first.lease(B, SHORT)
        first.heartbeat(LONG)
        time.sleep(PAST_SHORT)
        assert [node_of(first)] * 2 == [second.lease(A, LONG), second.lease(B, LONG)]

    def test_a_killed_holders_leases_are_taken_at_once(self, store_factory: StoreFactory) -> None:
        """SIGKILL of a holder: its long leases are taken over without waiting for expiry, its
        rows become orphans, and holders() shows it dead."""
        store = store_factory.open()
        store.put(record(A, S.UPLOADING))
        child = store_factory.child(f"""
            store.heartbeat({LONG}, in_flight=1)
            print(store.lease({A!r}, {LONG}), store.holder, flush=True)
            time.sleep(60)
            """)
        try:
            assert child.stdout is not None
            answer, holder = child.stdout.readline().split()
            assert "None" == answer
            assert node_of(store) == store.lease(A, LONG)  # one host: the same node name
            assert [] == store.take_orphans({S.UPLOADING}, LONG)
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=CHILD_TIMEOUT)
        assert eventually(lambda: [A] == [r.path for r in
                                          store.take_orphans({S.UPLOADING}, LONG)])
        assert None is store.lease(A, LONG)
        info = holder_info(store, holder)
        assert info is not None
        assert (False, 1) == (info.alive, info.in_flight)


class OrphanContract:
    """take_orphans: rows in progress that no live holder leases, each to exactly one asker."""

    def test_orphans_are_unleased_rows_in_the_states(self, store_factory: StoreFactory) -> None:
        """Unleased rows in the asked states come back leased to the asker; others stay."""
        store = store_factory.open()
        store.put(record(A, S.UPLOADING))
        store.put(record(B, S.RUNNING, task_id="t1"))
        store.put(record("/hot/done.jpg", S.SUCCEEDED))
        taken = store.take_orphans({S.UPLOADING, S.RUNNING}, LONG)
        assert [(A, S.UPLOADING), (B, S.RUNNING)] == sorted((r.path, r.state) for r in taken)
        assert "t1" == next(r.task_id for r in taken if r.path == B)
        other = store_factory.open()
        assert [node_of(store)] * 2 == [other.lease(A, LONG), other.lease(B, LONG)]
        assert [] == store.take_orphans({S.UPLOADING, S.RUNNING}, LONG)
        assert [] == store.take_orphans(set(), LONG)

    def test_own_and_live_leases_are_not_orphans(self, store_factory: StoreFactory) -> None:
        """A row this holder or another live one leases is no orphan; once expired, it is."""
        first, second = store_factory.open(), store_factory.open()
        first.put(record(A, S.UPLOADING))
        first.put(record(B, S.UPLOADING))
        first.lease(A, LONG)
        second.lease(B, SHORT)
        assert [] == first.take_orphans({S.UPLOADING}, LONG)
        assert [] == second.take_orphans({S.UPLOADING}, LONG)
        time.sleep(PAST_SHORT)
        assert [B] == [r.path for r in first.take_orphans({S.UPLOADING}, LONG)]
        assert node_of(first) == second.lease(B, LONG)

    def test_limit_caps_the_orphans_taken(self, store_factory: StoreFactory) -> None:
        """At most `limit` rows per call; the next call takes the rest."""
        store = store_factory.open()
        store.put_many([record(f"/hot/{i}.jpg", S.UPLOADING) for i in range(5)])
        assert 3 == len(store.take_orphans({S.UPLOADING}, LONG, limit=3))
        assert 2 == len(store.take_orphans({S.UPLOADING}, LONG, limit=3))

    def test_racing_askers_each_get_distinct_rows(self, store_factory: StoreFactory) -> None:
        """Two handles taking orphans at once from threads: every row to exactly one."""
        handles = [store_factory.open(), store_factory.open()]
        paths = [f"/hot/{i:03}.jpg" for i in range(60)]
        handles[0].put_many([record(p, S.UPLOADING) for p in paths])
        got: list[list[str]] = [[], []]
        barrier = threading.Barrier(2)

        def take(i: int) -> None:
            barrier.wait()
            while batch := handles[i].take_orphans({S.UPLOADING}, LONG, limit=4):
                got[i].extend(r.path for r in batch)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert paths == sorted(got[0] + got[1])
        assert set() == set(got[0]) & set(got[1])

    def test_leave_frees_everything(self, store_factory: StoreFactory) -> None:
        """leave(): every lease of the holder ends at once and holders() forgets it."""
        first, second = store_factory.open(), store_factory.open()
        first.put(record(A, S.UPLOADING))
        first.heartbeat(LONG, in_flight=2)
        first.lease(A, LONG)
        first.lease(B, LONG)
        first.leave()
        assert [None, None] == [second.lease(A, LONG), second.lease(B, LONG)]
        assert None is holder_info(second, first.holder)
        second.release(A)
        assert [A] == [r.path for r in second.take_orphans({S.UPLOADING}, LONG)]


class HolderContract:
    """holders(): who works on the store, as their heartbeats left them."""

    def test_holders_list_the_beating_processes(self, store_factory: StoreFactory) -> None:
        """A beat registers node, pid, version and in flight; the next updates them, keeps the
        start; a view lists them, the most recent beat first."""
        first, second = store_factory.open(), store_factory.open()
        view = store_factory.view()
        assert [] == view.holders()
        first.heartbeat(LONG, in_flight=3, version="9.9")
        before = holder_info(view, first.holder)
        assert before is not None
        expected = (node_of(first), os.getpid(), "9.9", 3, True)
        assert expected == (before.node, before.pid, before.version, before.in_flight,
                            before.alive)
        assert before.started_at is not None and before.heartbeat_at is not None
        time.sleep(0.05)
        second.heartbeat(LONG)
        first.heartbeat(LONG, in_flight=1, version="9.9")
        after = holder_info(view, first.holder)
        assert after is not None and after.heartbeat_at is not None
        assert (1, before.started_at) == (after.in_flight, after.started_at)
        assert after.heartbeat_at > before.heartbeat_at
        assert [first.holder, second.holder] == [h.holder for h in view.holders()]

    def test_a_holder_that_stopped_beating_is_not_alive(
            self, store_factory: StoreFactory) -> None:
        """Once its lease window has passed since its last beat, a holder is listed dead."""
        store = store_factory.open()
        store.heartbeat(SHORT)
        assert True is getattr(holder_info(store, store.holder), "alive", None)
        time.sleep(PAST_SHORT)
        assert False is getattr(holder_info(store, store.holder), "alive", None)
