"""Tests for runwatchd.daemon.outcome_book: counts, failed_paths and the retry queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runwatchd.daemon.outcome_book import NO_CREDITS, OutcomeBook
from runwatchd.daemon.policy import RUN, SCAN, RunPolicy
from runwatchd.lifecycle.states import Ending, FailureReason, Outcome
from runwatchd.service.metrics import Metrics
from runwatchd.store.record import FileRecord

A, B, C = Path("/hot/a.jpg"), Path("/hot/b.jpg"), Path("/hot/c.jpg")


class Rows:
    """The store's get(), from a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, FileRecord] = {}

    def get(self, path: Path | str) -> FileRecord | None:
        return self.rows.get(str(path))

    def put(self, path: Path, state: str, **fields: Any) -> None:
        self.rows[str(path)] = FileRecord(path=str(path), state=state, **fields)


class Book:
    def __init__(self, policy: RunPolicy = RUN, metrics: Metrics | None = None) -> None:
        self.rows = Rows()
        self.now = [1000.0]
        self.credits_out = False
        self.book = OutcomeBook(self.rows, policy,  # type: ignore[arg-type]
                                credits_out=lambda: self.credits_out, metrics=metrics,
                                wall_clock=lambda: self.now[0])


@pytest.fixture
def run() -> Book:
    return Book(RUN)


@pytest.fixture
def scan() -> Book:
    return Book(SCAN)


# -- the retry queue ------------------------------------------------------------------------------

def test_retries_come_due_in_time_order(run: Book) -> None:
    """Scheduled out of order, retries come due earliest first, each once."""
    run.book.schedule_retry(B, 1020.0)
    run.book.schedule_retry(A, 1010.0)
    run.book.schedule_retry(C, 1030.0)
    run.now[0] = 1025.0
    assert [A, B] == run.book.due_retries()
    assert [] == run.book.due_retries()
    run.now[0] = 1030.0
    assert [C] == run.book.due_retries()


def test_a_new_retry_time_replaces_the_old_one(run: Book) -> None:
    """Rescheduling a file moves its retry; the stale entry never fires."""
    run.book.schedule_retry(A, 1010.0)
    run.book.schedule_retry(A, 1050.0)
    run.book.schedule_retry(A, 1050.0)  # the same time again: no second entry
    run.now[0] = 1020.0
    assert [] == run.book.due_retries()
    run.now[0] = 1050.0
    assert [A] == run.book.due_retries()
    assert [] == run.book.due_retries()


def test_next_retry_in_counts_down_on_the_wall_clock(run: Book) -> None:
    """next_retry_in() is None with nothing waiting, else the seconds left (0 once overdue)."""
    assert None is run.book.next_retry_in()
    run.book.schedule_retry(A, 1010.0)
    assert 10.0 == run.book.next_retry_in()
    run.now[0] = 1100.0
    assert 0.0 == run.book.next_retry_in()


def test_run_schedules_a_failed_file_at_its_next_attempt(run: Book) -> None:
    """A transient failure is retried when the journal row's backoff ends (run only)."""
    run.rows.put(A, "failed", error="upload failed: 503", next_attempt=1030.0)
    assert False is run.book.record(A, Ending(Outcome.FAILED, FailureReason.UPLOAD_FAILED))
    assert {str(A): "upload failed: 503"} == run.book.failed_paths()
    run.now[0] = 1030.0
    assert [A] == run.book.due_retries()


def test_scan_schedules_no_retries(scan: Book) -> None:
    """A scan reports a failure and exits; it keeps no retry queue."""
    scan.rows.put(A, "failed", error="upload failed: 503", next_attempt=1030.0)
    scan.book.record(A, Ending(Outcome.FAILED))
    assert None is scan.book.next_retry_in()


# -- failed_paths ---------------------------------------------------------------------------------

def test_success_clears_an_earlier_failure(run: Book) -> None:
    """A file that fails and then uploads leaves no failure behind."""
    run.rows.put(A, "invalid", error="too small")
    run.book.record(A, Ending(Outcome.INVALID, FailureReason.INVALID_FILE))
    assert {str(A): "too small"} == run.book.failed_paths()
    run.rows.put(A, "uploaded")
    run.book.record(A, Ending(Outcome.UPLOADED))
    assert {} == run.book.failed_paths()


def test_failure_reason_prefers_the_internal_error_then_the_row_then_the_outcome(
        run: Book) -> None:
    """The reason shown: an unexpected error's message, else the row's error, else the outcome."""
    run.rows.put(A, "failed", error="from the row")
    run.book.record(A, Ending(Outcome.FAILED), "internal error: boom")
    run.book.record(B, Ending(Outcome.ATTENTION))
    assert {str(A): "internal error: boom", str(B): "attention"} == run.book.failed_paths()


def test_a_file_deleted_before_its_turn_is_not_reported(run: Book, tmp_path: Path) -> None:
    """INVALID for a file that is gone, with no row, is nothing to report."""
    gone = tmp_path / "gone.jpg"
    run.book.record(gone, Ending(Outcome.INVALID))
    assert {} == run.book.failed_paths()


def test_skipped_file_in_a_failure_state_stays_failed(run: Book) -> None:
    """SKIPPED over a row that needs attention still counts as a failure."""
    run.rows.put(A, "attention", error="a task may exist")
    run.book.record(A, Ending(Outcome.SKIPPED))
    assert {str(A): "a task may exist"} == run.book.failed_paths()


def test_waiting_for_credits_is_a_failure_for_scan_only(run: Book, scan: Book) -> None:
    """AWAITING_CREDITS (and RETRY while credits are out) fail a scan; run waits for a reload."""
    assert False is run.book.record(A, Ending(Outcome.AWAITING_CREDITS))
    run.credits_out = True
    assert True is run.book.record(B, Ending(Outcome.RETRY))
    assert {} == run.book.failed_paths()
    assert False is scan.book.record(A, Ending(Outcome.AWAITING_CREDITS))
    scan.credits_out = True
    assert False is scan.book.record(B, Ending(Outcome.RETRY))
    assert {str(A): NO_CREDITS, str(B): NO_CREDITS} == scan.book.failed_paths()


def test_paused_files_are_counted_and_nothing_else(run: Book) -> None:
    """PAUSED is counted; it is no failure and does not go back to settle."""
    assert False is run.book.record(A, Ending(Outcome.PAUSED, FailureReason.KEY_REJECTED))
    assert (1, {}) == (run.book.counts()[Outcome.PAUSED], run.book.failed_paths())


def test_failed_earlier_is_reported_as_recorded_before(scan: Book) -> None:
    """A scan's unchanged failed file is reported with the row's reason, marked as earlier."""
    scan.book.failed_earlier(A, "too small (recorded earlier; the file did not change)")
    assert {str(A): "too small (recorded earlier; the file did not change)"} == (
        scan.book.failed_paths())


def test_task_endings_are_counted_and_reported(run: Book) -> None:
    """A followed task's end: SUCCEEDED clears the file, FAILED names the failure."""
    run.rows.put(B, "task_failed", failure="content moderation")
    run.book.failed_earlier(A, "old")
    run.book.task_finished(A, "SUCCEEDED")
    run.book.task_finished(B, "FAILED")
    counts = run.book.counts()
    assert (1, 1) == (counts[Outcome.SUCCEEDED], counts[Outcome.TASK_FAILED])
    assert {str(B): "generation FAILED: content moderation"} == run.book.failed_paths()


def test_views_are_copies(run: Book) -> None:
    """counts() and failed_paths() are snapshots the caller may keep."""
    counts, failed = run.book.counts(), run.book.failed_paths()
    run.book.record(A, Ending(Outcome.ATTENTION))
    assert (0, {}) == (counts[Outcome.ATTENTION], failed)


# -- metrics --------------------------------------------------------------------------------------

def test_metrics_take_the_reason_from_the_ending() -> None:
    """The failure reason comes from the Ending, not from the row's text."""
    metrics = Metrics(process_metrics=False)
    b = Book(RUN, metrics)
    b.rows.put(A, "failed", error="something else entirely")
    b.book.file_metrics(A, Ending(Outcome.FAILED, FailureReason.SUBMIT_FAILED), None)
    value = metrics.registry.get_sample_value("runwatchd_failures_total",
                                              {"reason": "submit_failed"})
    assert 1.0 == value
