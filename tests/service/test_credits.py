"""The credit balance: read off the main loop every 10 minutes, in status and metrics, warned on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import running
from helpers import wait_for

from runwatchd.config.load import parse_config
from runwatchd.errors import NetworkError
from runwatchd.service import status
from runwatchd.service.credits import RETRY_AFTER, CreditWatch
from runwatchd.service.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_low_balance_warns_once_until_it_recovers(caplog: pytest.LogCaptureFixture) -> None:
    """Falling under the line is one WARNING; staying under is quiet; again after a top-up."""
    caplog.set_level(logging.INFO)
    m = Metrics(process_metrics=False)
    watch = CreditWatch(dict, warn_below=lambda: 100.0, metrics=m, wall_clock=lambda: 1234.0)
    for balance in (500, 90, 80, 1000, 50):
        watch.record(balance)
    assert 2 == len(warnings(caplog))
    assert "Runway credits are low: 90 left (warning below 100" in warnings(caplog)[0]
    assert (50.0, 1234.0) == (m.registry.get_sample_value("runwatchd_credits"),
                              m.registry.get_sample_value(
                                  "runwatchd_credits_checked_timestamp_seconds"))
    assert {"balance": 50.0, "checked_at": 1234.0, "low": True, "warning_below": 100.0} == \
        watch.report()


def test_checks_are_paced_and_off_the_callers_thread() -> None:
    """poke() starts a check when due, on its own thread; not again before 10 minutes."""
    clock, calls = Clock(), []

    def check() -> dict[str, Any]:
        calls.append(1)
        return {"creditBalance": 700}

    watch = CreditWatch(check, warn_below=lambda: 100.0, clock=clock)
    watch.poke()
    wait_for(lambda: watch.balance == 700.0)
    watch.poke()
    clock.now = 599.0
    watch.poke()
    watch.stop()
    assert 1 == len(calls)
    clock.now = 600.0
    watch.poke()
    watch.stop()
    assert 2 == len(calls)


def test_a_failed_check_is_retried_sooner_and_never_raises() -> None:
    """An unreachable API costs nothing but a debug line; the next try comes in a minute."""
    clock, calls = Clock(), []

    def check() -> dict[str, Any]:
        calls.append(1)
        raise NetworkError("down")

    watch = CreditWatch(check, warn_below=lambda: 100.0, clock=clock)
    watch.poke()
    watch.stop()
    clock.now = RETRY_AFTER
    watch.poke()
    watch.stop()
    assert (2, None, None) == (len(calls), watch.balance, watch.report())


def test_a_reply_without_a_balance_is_ignored() -> None:
    """A missing or non-numeric creditBalance leaves the balance unknown."""
    for reply in ({}, {"creditBalance": "lots"}, {"creditBalance": True}):
        watch = CreditWatch(lambda r=reply: r, warn_below=lambda: 100.0)
        watch.check_now()
        assert None is watch.balance


def test_the_key_defaults_to_100_and_is_checked() -> None:
    """[daemon] credits_warning_below: 100 by default, a number, not negative."""
    from runwatchd.errors import ConfigError

    assert 100.0 == parse_config({"folder": []}, "t").daemon.credits_warning_below
    assert 5 == parse_config({"daemon": {"credits_warning_below": 5}, "folder": []},
                             "t").daemon.credits_warning_below
    with pytest.raises(ConfigError):
        parse_config({"daemon": {"credits_warning_below": -1}, "folder": []}, "t")


def test_the_daemon_reports_its_balance_in_status(tmp_path: Path) -> None:
    """A running daemon reads the emulator's balance and status shows it."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running(tmp_path) as r:
        daemon = r.start(r.config([inbox]))
        written = r.state / status.STATUS_FILE
        wait_for(lambda: written.exists() and json.loads(written.read_text()).get("credits"),
                 10)
        credits = json.loads(written.read_text())["credits"]
        assert credits["balance"] > 0 and credits["low"] is False
        text = status.render(status.collect_status(r.state))
        assert f"credits: {credits['balance']:g}" in text
        r.stop(daemon)
