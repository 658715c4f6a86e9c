"""Issue 11's second acceptance run: PostgreSQL stopped for 20 s while two nodes work.

Done when nothing is lost (every file ends SUCCEEDED with a correct sidecar and its outputs),
nothing is uploaded twice, and work resumes within 10 s of the server's return. Files dropped
while the server is down prove the rest of item 5 ("nothing is uploaded or submitted without a
claim"): none of them is stored before the server is back. The first upload stored after the
return (of any file) measures the resumption. Both nodes' leases (3 s) expire during the
outage, so the return is a moment where each could take the other's work: it must not repeat
it. Each node says what happened in one clear line (WARNING or ERROR; one more allowed for the
return), no traceback.

The server is one of this test's own (own_postgres.py) on a fixed 127.0.0.1 port, stopped with
pg_ctl's fast mode (every connection ended at once) and started again on the same address.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import (
    bad_sidecars,
    cluster,
    done,
    make_files,
    not_done,
    objects_by_content,
    stored_twice,
    stray_outputs,
    tasks_by_status,
    tasks_per_content,
    tracebacks,
    unnamed_uploads,
    view_of,
    wait_done,
)
from helpers import wait_for
from own_postgres import OwnPostgres, own_postgres

from runwatchd.emulator import Emulator

BEFORE, DURING = 200, 50
OUTAGE_SECONDS = 20
LEASE_SECONDS = 3


@pytest.fixture
def server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server this test may stop and start again."""
    with own_postgres() as pg:
        yield pg


def test_postgres_stopped_for_20_s_loses_nothing_repeats_nothing_and_work_resumes(
        tmp_path: Path, emulator: Emulator, server: OwnPostgres) -> None:
    """Two nodes, PostgreSQL down 20 s mid-run: all done, stored once, resumed within 10 s."""
    store: dict[str, Any] = {"url": server.url, "lease_seconds": LEASE_SECONDS}
    with cluster(tmp_path, emulator, store) as c:
        c.start(2)
        first = make_files(c.hot, (f"a{i:03d}.png" for i in range(BEFORE)))
        assert wait_for(lambda: done(first, rule=False) >= BEFORE // 3, 60, 0.1), c.logs()
        marks = {n.name: len(n.log()) for n in c.nodes}
        server.stop()
        stopped_at = time.time()
        later = make_files(c.hot, (f"b{i:03d}.png" for i in range(DURING)), seed=1)
        time.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.time()))
        assert [True, True] == [n.alive() for n in c.nodes], c.logs()
        server.start()
        back_at = time.time()
        files = {**first, **later}
        finished = wait_done(files, 60)
        assert [True, True] == [n.alive() for n in c.nodes], c.logs()
        with view_of(server.url, tmp_path) as view:
            counts = view.counts()
            unfinished = not_done(files, view)
        said = {n.name: warnings_in(n.log()[marks[n.name]:]) for n in c.nodes}
        logs = c.logs()
    by_content = objects_by_content(emulator)
    stored = {p.name: [round(o.created_at - stopped_at, 2) for o in by_content.get(sha, [])]
              for p, sha in files.items()}
    assert {} == stored_twice(files, emulator), {n: t for n, t in stored.items() if len(t) != 1}
    assert {} == {n: t for n, t in stored.items() if n.startswith("b")
                  and min(t) < back_at - stopped_at}, "uploaded without a claim (s after stop)"
    resumed = min((t for times in stored.values() for t in times if t > back_at - stopped_at),
                  default=1e9) - (back_at - stopped_at)
    assert resumed <= 10, f"the first upload after the return came {resumed:.1f} s after it"
    assert {} == unfinished, f"{finished} of {len(files)} done:\n{logs}"
    assert len(files) == finished, logs
    assert {} == bad_sidecars(files)
    assert {} == unnamed_uploads(files, emulator)
    assert {} == {n: k for n, k in tasks_per_content(files, emulator).items() if k != 1}
    assert {"SUCCEEDED": len(files)} == tasks_by_status(emulator)
    assert [] == stray_outputs(files)
    assert {"succeeded": len(files)} == counts
    # "logs one clear line": one when the database goes (one more allowed for its return).
    assert {} == {name: lines for name, lines in said.items() if not 1 <= len(lines) <= 2}
    assert {} == tracebacks(c.nodes)


def warnings_in(text: str) -> list[str]:
    """The WARNING and ERROR lines of a log."""
    return [ln for ln in text.splitlines() if " WARNING " in ln or " ERROR " in ln]
