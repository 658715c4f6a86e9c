"""Tests for runwatchd.daemon.reconcile.needs_look: what a scan does with each file it finds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runwatchd.daemon.reconcile import Look, needs_look
from runwatchd.store.record import FileRecord

NOW = 1000.0


def stat_of(tmp_path: Path) -> os.stat_result:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 600)
    return path.stat()


def decide(st: os.stat_result, state: str | None, *, record: FileRecord | None = None,
           sidecar: bool = True, **switches: Any) -> tuple[Look, list[str]]:
    """needs_look() for a row in `state` that matches `st` (None: no row); also which lazy
    facts it asked for."""
    asked: list[str] = []
    row = None if state is None else (state, st.st_size, st.st_mtime_ns, st.st_ino)
    options = {"named": False, "honour_backoff": True, "report_failures": False, **switches}

    def get_record() -> FileRecord | None:
        asked.append("record")
        return record

    def sidecar_exists() -> bool:
        asked.append("sidecar")
        return sidecar

    look = needs_look(st, row, now=NOW, record=get_record, sidecar_exists=sidecar_exists,
                      **options)
    return look, asked


def test_unknown_or_changed_files_are_looked_at(tmp_path: Path) -> None:
    """No row, or a row for another version of the file: to settle."""
    st = stat_of(tmp_path)
    assert (Look(True), []) == decide(st, None)
    look = needs_look(st, ("uploaded", st.st_size + 1, st.st_mtime_ns, st.st_ino), named=False,
                      honour_backoff=True, report_failures=False, now=NOW,
                      record=lambda: None, sidecar_exists=lambda: True)
    assert Look(True) == look


def test_an_unchanged_finished_file_needs_nothing_and_costs_one_stat(tmp_path: Path) -> None:
    """An uploaded file with its sidecar: nothing to do, and no journal record is read."""
    assert (Look(False), ["sidecar"]) == decide(stat_of(tmp_path), "uploaded")


def test_a_deleted_sidecar_asks_for_the_file_again(tmp_path: Path) -> None:
    """The user deleted the sidecar: the file is processed again."""
    assert (Look(True), ["sidecar"]) == decide(stat_of(tmp_path), "succeeded", sidecar=False)


def test_a_failed_file_waits_out_its_backoff(tmp_path: Path) -> None:
    """run: a failed file whose backoff stands is retried then, not now; an expired one now."""
    st = stat_of(tmp_path)
    waiting = FileRecord(path="a", state="failed", next_attempt=NOW + 30)
    assert Look(False, retry_at=NOW + 30) == decide(st, "failed", record=waiting)[0]
    expired = FileRecord(path="a", state="failed", next_attempt=NOW - 1)
    assert Look(True) == decide(st, "failed", record=expired)[0]
    assert (Look(True), []) == decide(st, "failed", record=waiting, honour_backoff=False)


def test_scan_reports_an_unchanged_failure(tmp_path: Path) -> None:
    """scan: an invalid file that did not change is not retried but reported, with its error."""
    record = FileRecord(path="a", state="invalid", error="too small")
    look, asked = decide(stat_of(tmp_path), "invalid", record=record, report_failures=True)
    assert (Look(False, failed_earlier="too small"), ["record"]) == (look, asked)


def test_named_files_are_always_looked_at(tmp_path: Path) -> None:
    """`runwatchd retry` names files on purpose: the processor decides."""
    assert (Look(True), []) == decide(stat_of(tmp_path), "succeeded", named=True)
