"""Tests for runwatchd.store.transitions: strict or lenient, from the environment or a choice."""

from __future__ import annotations

import logging

import pytest

from runwatchd.lifecycle.states import TransitionError
from runwatchd.store.transitions import STRICT_ENV, TransitionGuard, strict_from_env


@pytest.mark.parametrize(("value", "strict"), [("1", True), ("yes", True), (" TRUE ", True),
                                               ("0", False), ("", False), ("off", False)])
def test_strict_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                          strict: bool) -> None:
    """$RUNWATCHD_STRICT_TRANSITIONS turns strict mode on with the usual yes-words."""
    monkeypatch.setenv(STRICT_ENV, value)
    assert strict == strict_from_env()
    assert strict == TransitionGuard().strict


def test_an_explicit_choice_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TransitionGuard(strict=False) stays lenient under a strict environment (the suite's)."""
    monkeypatch.setenv(STRICT_ENV, "1")
    assert False is TransitionGuard(strict=False).strict


def test_the_suite_runs_strict() -> None:
    """conftest.py sets strict mode for every test and the processes they start."""
    assert True is strict_from_env()


def test_allowed_writes_pass_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """An allowed transition or a rewrite of the same state neither raises nor logs."""
    guard = TransitionGuard(strict=True)
    with caplog.at_level(logging.DEBUG):
        guard.check(None, "uploading", "/a.jpg")
        guard.check("running", "running", "/a.jpg")
    assert [] == caplog.records


def test_strict_raises_lenient_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """Strict: TransitionError naming the path. Lenient: one warning per (old, new) pair."""
    with pytest.raises(TransitionError, match="/a.jpg: succeeded -> running"):
        TransitionGuard(strict=True).check("succeeded", "running", "/a.jpg")
    lenient = TransitionGuard(strict=False)
    with caplog.at_level(logging.WARNING):
        for path in ("/a.jpg", "/b.jpg"):
            lenient.check("succeeded", "running", path)
        lenient.check(None, "running", "/c.jpg")
        lenient.check(None, "bogus", "/c.jpg")
    assert 2 == len(caplog.records)
    assert "/a.jpg: succeeded -> running" in caplog.records[0].getMessage()
    assert "unknown state" in caplog.records[1].getMessage()
