"""The Store contract: what every backend must do, whatever it stores rows in.

A backend's test module defines a `store_factory` fixture yielding a StoreFactory on a fresh,
empty store, and subclasses the classes here (this module is not collected by itself):

    @pytest.fixture
    def store_factory(tmp_path): ...  # yield StoreFactory(tmp_path / "state", url); .close()
    class TestSqliteRows(RowContract): pass

Every handle is opened through open_store/open_view, in this process or in child processes
(which run a few lines of Python with `store` bound), so a backend passes by being reachable
from open_store. Ownership, transitions and the view are in contract_owner.py.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from subprocess import PIPE, Popen

import pytest

from runwatchd.lifecycle.states import TASK_STATES, FileState
from runwatchd.store import FileRecord, Store, StoreView, open_store, open_view

SHA, OTHER_SHA = "a" * 64, "b" * 64
PATH = "/hot/shot.jpg"
CHILD_TIMEOUT = 60.0


class StoreFactory:
    """Opens handles on one store: here (closed by close()) or in child processes."""

    def __init__(self, state_dir: Path, url: str | None = None) -> None:
        self.state_dir, self.url = state_dir, url
        self._opened: list[Store | StoreView] = []

    def open(self, *, strict: bool = True, node: str | None = None) -> Store:
        store = open_store(self.state_dir, self.url, strict=strict, node=node)
        self._opened.append(store)
        return store

    def view(self, *, node: str | None = None) -> StoreView:
        view = open_view(self.state_dir, self.url, node=node)
        self._opened.append(view)
        return view

    def child(self, body: str) -> Popen[str]:
        """A Python child running `body` with `store` open (strict), FileRecord and Path bound;
        its stdout is a pipe."""
        code = (f"import os, sys, time\nfrom pathlib import Path\n"
                f"from runwatchd.store import FileRecord, open_store\n"
                f"store = open_store(Path({str(self.state_dir)!r}), {self.url!r}, strict=True)\n"
                + textwrap.dedent(body))
        return Popen([sys.executable, "-c", code], stdout=PIPE, text=True)

    def close(self) -> None:
        for handle in reversed(self._opened):
            handle.close()
        self._opened.clear()


def record(path: str = PATH, state: str = FileState.TO_SUBMIT, sha: str | None = SHA,
           **changes: object) -> FileRecord:
    """A row as a file with a rule has it once uploaded."""
    row = FileRecord(path=path, state=state, size=600, mtime_ns=1, inode=2, sha256=sha,
                     runway_uri="runway://upload/x", uploaded_at=5.0, rule_fp="f",
                     rule_name="stills", output_dir="/hot/renders")
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def stored(store: Store, path: str = PATH) -> FileRecord:
    """The row of `path`, which must exist."""
    got = store.get(path)
    assert got is not None, f"no row for {path}"
    return got


def waiting_children(factory: StoreFactory, body: str, n: int) -> tuple[list[Popen[str]], Path]:
    """`n` children that run `body` once the returned go file exists (touch it to start them
    together). A child whose go never comes (the test failed first) exits after CHILD_TIMEOUT
    instead of waiting forever."""
    go = factory.state_dir / "go"
    wait = (f"give_up = time.monotonic() + {CHILD_TIMEOUT}\n"
            f"while not Path({str(go)!r}).exists():\n"
            "    if time.monotonic() > give_up:\n        sys.exit('no go')\n"
            "    time.sleep(0.005)\n")
    return [factory.child(wait + textwrap.dedent(body)) for _ in range(n)], go


def finish(children: list[Popen[str]]) -> list[str]:
    """What each child printed (stripped), once all ended well."""
    results = []
    for child in children:
        out, _ = child.communicate(timeout=CHILD_TIMEOUT)
        assert 0 == child.returncode
        results.append(out.strip())
    return results


def race(factory: StoreFactory, body: str, n: int = 4) -> list[str]:
    """`n` children run `body` (which prints a result) at the same moment: what they printed."""
    children, go = waiting_children(factory, body, n)
    go.touch()
    return finish(children)


class RowContract:
    """Rows: put/get, put_many, update, delete and the reads."""

    def test_put_get_round_trip_keeps_every_field(self, store_factory: StoreFactory) -> None:
        """Every FileRecord field comes back as written (outputs list included)."""
        store = store_factory.open()
        values = {f.name: f"{f.name}-v" for f in fields(FileRecord)}
        values.update(path=PATH, state=FileState.SUCCEEDED, size=1, mtime_ns=2, ctime_ns=3,
                      inode=4, uploaded_at=5.5, attempts=6, next_attempt=7.5,
                      outputs=["renders/a.mp4", "renders/b.mp4"], updated_at=0.0)
        written = FileRecord(**values)
        store.put(written)
        assert 0.0 < written.updated_at
        assert asdict(written) == asdict(stored(store))

    def test_get_of_an_unknown_path_is_none(self, store_factory: StoreFactory) -> None:
        """get() of a path never written answers None."""
        assert None is store_factory.open().get(Path("/hot/none.jpg"))

    def test_put_replaces_the_whole_row(self, store_factory: StoreFactory) -> None:
        """A second put() leaves no column of the first behind."""
        store = store_factory.open()
        store.put(record(task_id="t1", error="boom"))
        store.put(FileRecord(path=PATH, state=FileState.UPLOADED))
        got = stored(store)
        assert (FileState.UPLOADED, None, None, None) == (got.state, got.task_id, got.error,
                                                          got.sha256)

    def test_put_many_writes_every_row(self, store_factory: StoreFactory) -> None:
        """put_many() writes all rows (the last of one path twice wins); [] is fine."""
        store = store_factory.open()
        store.put_many([])
        rows = [record(f"/hot/{i}.jpg", FileState.UPLOADED) for i in range(1200)]
        store.put_many(rows + [record("/hot/0.jpg", FileState.TO_SUBMIT)])
        assert {FileState.UPLOADED: 1199, FileState.TO_SUBMIT: 1} == store.counts()
        assert all(0.0 < r.updated_at for r in rows)

    def test_update_changes_only_the_given_columns(self, store_factory: StoreFactory) -> None:
        """update() returns the new row; an absent row stays absent (None)."""
        store = store_factory.open()
        store.put(record())
        changed = store.update(PATH, error="late", attempts=2)
        assert changed is not None
        assert ("late", 2, SHA) == (changed.error, changed.attempts, changed.sha256)
        assert asdict(changed) == asdict(stored(store))
        assert None is store.update("/hot/none.jpg", error="x")
        assert None is store.get("/hot/none.jpg")

    def test_update_if_changes_only_the_expected_state(self, store_factory: StoreFactory) -> None:
        """update_if changes a row still in the expected state, and leaves one that moved on."""
        store = store_factory.open()
        store.put(record(state=FileState.ATTENTION))
        assert store.update_if(PATH, FileState.ATTENTION, state=FileState.RETRY) is True
        assert store.update_if(PATH, FileState.ATTENTION, state=FileState.TO_SUBMIT) is False
        assert store.update_if("/hot/none.jpg", FileState.ATTENTION, state="retry") is False
        assert FileState.RETRY == stored(store).state

    def test_update_if_lets_one_of_many_processes_through(
            self, store_factory: StoreFactory) -> None:
        """Processes racing update_if from the same state: exactly one changes the row."""
        store_factory.open().put(record(state=FileState.ATTENTION))
        results = race(store_factory, f"print(store.update_if({PATH!r}, 'attention', "
                                      "state='retry', error=str(os.getpid())))")
        assert ["True"] == [r for r in results if r == "True"]
        assert 3 == results.count("False")

    def test_updates_of_other_columns_are_not_lost_across_processes(
            self, store_factory: StoreFactory) -> None:
        """A process's update() of one column never undoes another's update of another."""
        store = store_factory.open()
        store.put(record(state=FileState.RUNNING))
        children, go = waiting_children(store_factory, f"""
            for i in range(300):
                store.update({PATH!r}, task_status=f"c{{i}}")
            """, 1)
        go.touch()
        for i in range(300):
            store.update(PATH, error=f"p{i}")
        finish(children)
        got = stored(store)
        assert ("p299", "c299") == (got.error, got.task_status)

    def test_delete_forgets_the_row(self, store_factory: StoreFactory) -> None:
        """delete() removes the row; deleting an unknown path is no error."""
        store = store_factory.open()
        store.put(record())
        store.delete(Path(PATH))
        store.delete("/hot/none.jpg")
        assert None is store.get(PATH)

    def test_reads_of_several_rows(self, store_factory: StoreFactory) -> None:
        """in_state, counts (ordered by state), output_dirs and iteration see every row."""
        store = store_factory.open()
        store.put(record("/a.jpg"))
        store.put(record("/b.jpg", FileState.ATTENTION, error="needs attention: x"))
        store.put(FileRecord(path="/c.jpg", state=FileState.UPLOADED))
        assert ["/b.jpg"] == [r.path for r in store.in_state(FileState.ATTENTION)]
        assert ["/a.jpg", "/c.jpg"] == sorted(r.path for r in store.in_state("to_submit",
                                                                              "uploaded"))
        assert [] == store.in_state(FileState.RUNNING)
        counts = store.counts()
        assert {"attention": 1, "to_submit": 1, "uploaded": 1} == counts
        assert sorted(counts) == list(counts)
        assert {"/hot/renders"} == store.output_dirs()
        assert ["/a.jpg", "/b.jpg", "/c.jpg"] == sorted(r.path for r in store)

    def test_signature_of_one_row_matches_signatures(self, store_factory: StoreFactory) -> None:
        """signature(path) answers what signatures() has for that path, and None for others."""
        store = store_factory.open()
        store.put(record())
        store.put(FileRecord(path="/c.jpg", state=FileState.UPLOADED))
        assert {PATH: ("to_submit", 600, 1, 2), "/c.jpg": ("uploaded", None, None, None)} == (
            store.signatures())
        assert ("to_submit", 600, 1, 2) == store.signature(Path(PATH))
        assert None is store.signature("/hot/other.jpg")

    def test_a_second_handle_sees_committed_writes(self, store_factory: StoreFactory) -> None:
        """What one handle wrote, another (as another process would) reads at once."""
        first, second = store_factory.open(), store_factory.open()
        first.put(record())
        assert FileState.TO_SUBMIT == stored(second).state


class ClaimContract:
    """At most once: claim_submit and put_unless_claimed."""

    def test_claim_records_the_intent(self, store_factory: StoreFactory) -> None:
        """claim_submit on a fresh row writes state "submitting" and returns None."""
        store = store_factory.open()
        assert None is store.claim_submit(record())
        assert FileState.SUBMITTING == stored(store).state

    @pytest.mark.parametrize("state", sorted(TASK_STATES))
    def test_claim_refuses_when_the_content_has_a_task(
            self, store_factory: StoreFactory, state: str) -> None:
        """Same path and content already holding (or maybe holding) a task: refused."""
        store = store_factory.open()
        store.put(record(state=state, task_id="t1"))
        holder = store.claim_submit(record())
        assert holder is not None
        assert (state, "t1") == (holder.state, holder.task_id)
        assert state == stored(store).state

    @pytest.mark.parametrize("state", ["retry", "awaiting_credits", "to_submit", "failed"])
    def test_claim_allows_rows_without_a_task(
            self, store_factory: StoreFactory, state: str) -> None:
        """retry (on purpose), awaiting credits, to_submit and failed hold no task."""
        store = store_factory.open()
        store.put(record())
        store.update(PATH, state=state)
        assert None is store.claim_submit(record())

    def test_claim_allows_new_content_of_the_same_path(self, store_factory: StoreFactory) -> None:
        """A file replaced by new content may be generated again: the key is the content."""
        # Lenient: succeeded -> submitting is no lifecycle transition (new content passes through
        # to_submit first); this is about the claim's rule only.
        store = store_factory.open(strict=False)
        store.put(record(state=FileState.SUCCEEDED))
        assert None is store.claim_submit(record(sha=OTHER_SHA))

    def test_only_one_of_many_threads_claims(self, store_factory: StoreFactory) -> None:
        """Eight threads claiming the same content at once: exactly one wins."""
        store = store_factory.open()
        wins: list[bool] = []
        barrier = threading.Barrier(8)

        def claim() -> None:
            barrier.wait()
            wins.append(store.claim_submit(record()) is None)

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 1 == sum(wins)

    def test_only_one_of_many_processes_claims(self, store_factory: StoreFactory) -> None:
        """Processes (the daemon, `runwatchd retry`) claiming the same content: one wins."""
        store_factory.open().put(record())
        results = race(store_factory, f"r = FileRecord(path={PATH!r}, state='to_submit', "
                                      f"sha256={SHA!r})\nprint(store.claim_submit(r) is None)")
        assert ["True"] == [r for r in results if r == "True"]

    @pytest.mark.parametrize(("sha", "written"), [(None, False), (SHA, False), (OTHER_SHA, True)])
    def test_put_unless_claimed_over_a_task(
            self, store_factory: StoreFactory, sha: str | None, written: bool) -> None:
        """Over a task row: refused (holder returned) for unknown or same content, else written."""
        store = store_factory.open()
        store.put(record(state=FileState.RUNNING, task_id="t1"))
        holder = store.put_unless_claimed(record(state=FileState.UPLOADING, sha=sha))
        assert written == (holder is None)
        expected = FileState.UPLOADING if written else FileState.RUNNING
        assert expected == stored(store).state
        if holder is not None:
            assert "t1" == holder.task_id

    @pytest.mark.parametrize("sha", [None, SHA])
    def test_put_unless_claimed_without_a_task(
            self, store_factory: StoreFactory, sha: str | None) -> None:
        """No row, or a row holding no task: always written."""
        store = store_factory.open()
        assert None is store.put_unless_claimed(record(state=FileState.UPLOADING, sha=sha))
        assert None is store.put_unless_claimed(record(state=FileState.TO_SUBMIT, sha=sha))
        assert FileState.TO_SUBMIT == stored(store).state


def wait_for_line(child: Popen[str], expected: str) -> None:
    """Read the child's stdout until `expected` (a child that dies first fails the test)."""
    assert child.stdout is not None
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            pytest.fail(f"child ended (code {child.wait()}) before printing {expected!r}")
        if line.strip() == expected:
            return
    pytest.fail(f"child did not print {expected!r}")
