"""Tests for runwatchd.service.web.view and catalog: display states, rows, JSON, snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import FakeClock

from runwatchd.lifecycle.states import FileState
from runwatchd.service.web.api import json_response
from runwatchd.service.web.catalog import Catalog
from runwatchd.service.web.view import display_of, file_id, file_row, select, totals
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore


def test_every_store_state_has_its_display_state() -> None:
    """Each store state is grouped as the page's readers think of it."""
    assert {
        "uploading": "uploading", "uploaded": "uploaded", "to_submit": "generating",
        "submitting": "generating", "running": "generating", "retry": "generating",
        "succeeded": "succeeded", "task_failed": "failed", "invalid": "failed",
        "failed": "failed", "attention": "attention", "awaiting_credits": "attention",
        "no_sidecar": "attention",
    } == {str(state): str(display_of(state)) for state in FileState}


def test_an_unknown_state_asks_for_attention() -> None:
    """A state this page does not know (a newer daemon's) is shown as needing attention."""
    row = file_row(FileRecord("/hot/a.png", "teleporting"), progress=None, node="n", folders=[],
                   now=0)
    assert ("attention", "teleporting") == (row["display"], row["reason"])
    assert "Unknown state" in row["advice"]


def test_ids_are_opaque_stable_and_hex() -> None:
    """An id is a fixed-length hash of the store key, the same every time, any bytes welcome."""
    odd = os.fsdecode(b"/hot/caf\xe9.png")
    assert file_id("/hot/a.png") == file_id("/hot/a.png") != file_id("/hot/b.png")
    assert 24 == len(file_id(odd)) and int(file_id(odd), 16) >= 0


def test_invalid_utf8_names_travel_as_valid_ascii_json() -> None:
    """A surrogate-escaped name (bytes that are not UTF-8) is encoded as valid JSON."""
    path = os.fsdecode(b"/hot/caf\xe9 <b>.png")
    row = file_row(FileRecord(path, "invalid", error="too small"), progress=None, node="n",
                   folders=[Path("/hot")], now=0)
    body = json_response(200, row).body
    assert (True, path, "/hot") == (body.isascii(), json.loads(body)["path"],
                                    json.loads(body)["folder"])


def test_the_deepest_watched_folder_owns_a_file() -> None:
    """With nested roots, a file belongs to the most specific one."""
    row = file_row(FileRecord("/hot/sub/a.png", "uploaded"), progress=None, node="n",
                   folders=[Path("/hot"), Path("/hot/sub"), Path("/other")], now=0)
    assert "/hot/sub" == row["folder"]


def test_select_puts_settling_over_an_old_row() -> None:
    """A file settling again is listed once, as settling, whatever its old row said."""
    records = [FileRecord("/hot/a.png", "succeeded", updated_at=5.0)]
    chosen, total = select(records, ["/hot/a.png", "/hot/b.png"], now=10.0)
    assert ([("/hot/a.png", "settling"), ("/hot/b.png", "settling")], 2) == (
        sorted((r.path, r.state) for r in chosen), total)


def test_totals_count_every_display_state() -> None:
    """Totals name every display state, zero or not, and add the files settling."""
    assert {"waiting": 2, "uploading": 0, "uploaded": 3, "generating": 2, "succeeded": 0,
            "failed": 1, "attention": 1} == totals(
        {"uploaded": 3, "running": 1, "retry": 1, "invalid": 1, "no_sidecar": 1}, 2)


def test_catalog_reads_the_store_at_most_once_a_second(tmp_path: Path) -> None:
    """Reads within the snapshot's life share it; past it, or after invalidate(), re-read."""
    store = SqliteStore(tmp_path / "j.sqlite3")
    clock = FakeClock()
    try:
        catalog = Catalog(store, clock=clock)
        store.put(FileRecord("/hot/a.png", "uploaded"))
        assert ["/hot/a.png"] == [r.path for r in catalog.records()]
        store.put(FileRecord("/hot/b.png", "uploaded"))
        assert 1 == len(catalog.records())
        clock.advance(1.0)
        assert 2 == len(catalog.records())
        store.put(FileRecord("/hot/c.png", "uploaded"))
        catalog.invalidate()
        assert 3 == len(catalog.records())
    finally:
        store.close()


def test_catalog_finds_rows_by_id_without_rereading_for_made_up_ids(tmp_path: Path) -> None:
    """find() maps ids to rows; an unknown id does not force a re-read of a fresh snapshot."""
    store = SqliteStore(tmp_path / "j.sqlite3")
    clock = FakeClock()
    try:
        catalog = Catalog(store, clock=clock)
        store.put(FileRecord("/hot/a.png", "uploaded"))
        assert "/hot/a.png" == getattr(catalog.find(file_id("/hot/a.png")), "path", None)
        store.put(FileRecord("/hot/b.png", "uploaded"))
        assert None is catalog.find(file_id("/hot/b.png"))
        clock.advance(1.0)
        assert "/hot/b.png" == getattr(catalog.find(file_id("/hot/b.png")), "path", None)
    finally:
        store.close()
