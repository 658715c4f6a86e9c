"""Tests for runwatchd.daemon.policy: the run/scan/retry switches and the Scope of a run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runwatchd.daemon.policy import RETRY, RUN, SCAN, Scope

HOT = Path("/hot")


def test_run_watches_forever_and_schedules_retries() -> None:
    """run: observers, no exit when idle, service, retries, reload; no failure report."""
    assert (True, False, True, True, True, False, False) == (
        RUN.watch, RUN.exit_when_idle, RUN.service, RUN.schedule_retries, RUN.reload,
        RUN.report_failures, RUN.recover_only_in_scope)


def test_scan_exits_when_idle_and_reports_failures() -> None:
    """scan: no observers, exits when idle, reports failures, recovers only its own tasks."""
    assert (False, True, False, False, False, True, True) == (
        SCAN.watch, SCAN.exit_when_idle, SCAN.service, SCAN.schedule_retries, SCAN.reload,
        SCAN.report_failures, SCAN.recover_only_in_scope)


def test_retry_behaves_as_a_scan() -> None:
    """retry is a scan under its own name (the named files come from its Scope)."""
    assert ("retry", SCAN) == (RETRY.name, dataclasses.replace(RETRY, name="scan"))


def test_policies_are_frozen() -> None:
    """A policy cannot be changed once made (it is shared by every part of the daemon)."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        RUN.watch = False  # type: ignore[misc]


def test_default_scope_covers_every_file() -> None:
    """No tops and no names: the whole folder, every file."""
    scope = Scope()
    assert (False, [None], True) == (
        scope.named, scope.tops_for(HOT), scope.covers(HOT, HOT / "deep" / "a.jpg"))


def test_scope_tops_cover_their_trees_only() -> None:
    """DIRs given to scan: files in or under them are covered, their siblings are not."""
    scope = Scope.of(tops={HOT: [HOT / "a"]})
    assert [HOT / "a"] == scope.tops_for(HOT)
    assert [None] == scope.tops_for(Path("/other"))
    assert (True, True, False) == (scope.covers(HOT, HOT / "a" / "x.jpg"),
                                   scope.covers(HOT, HOT / "a" / "b" / "x.jpg"),
                                   scope.covers(HOT, HOT / "c" / "x.jpg"))


def test_scope_only_names_files() -> None:
    """`retry`'s named files: only they pass."""
    scope = Scope.of(only=[HOT / "a.jpg"])
    assert (True, True, False) == (scope.named, scope.names(HOT / "a.jpg"),
                                   scope.names(HOT / "b.jpg"))
    assert False is scope.covers(HOT, HOT / "b.jpg")
