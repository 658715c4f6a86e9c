"""Losing the store: no new work while it is unreachable, one line each way, the watchdog told
only past outage_seconds, and the work resumes on its own."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Runner, uploads
from helpers import FakeClock, drop, wait_for
from helpers import has_sidecar as done

from runwatchd.daemon.outage import StoreOutage
from runwatchd.errors import StoreUnavailable
from runwatchd.lifecycle import sidecar
from runwatchd.store import open_store
from runwatchd.store.base import Store

GONE = "store postgresql://runwatchd@db/runwatchd unavailable: connection refused"


class Flaky:
    """A store whose every call fails while `down` (a database server stopped)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable(GONE)
            return attr(*args, **kwargs)
        return call

    def __iter__(self) -> Iterator[Any]:
        if self.down:
            raise StoreUnavailable(GONE)
        return iter(self.inner)


def test_no_work_while_the_store_is_gone_and_it_resumes_on_its_own(
        runner: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Files dropped during an outage wait (nothing uploaded without a claim), and go once the
    store is back; the outage is one line, its end another."""
    hot = tmp_path / "hot"
    hot.mkdir()
    store = Flaky(open_store(runner.state))
    cfg = runner.config([hot], rescan_interval=0)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, lease_seconds=1.5))
    daemon = runner.start(cfg, journal=store)  # type: ignore[arg-type]
    try:
        first = drop(hot / "before.jpg")
        assert wait_for(lambda: done(first), 10)
        store.down = True
        late = [drop(hot / f"during{n}.jpg") for n in range(3)]
        assert wait_for(lambda: daemon.outage.down, 10)
        time.sleep(0.5)  # the files settle and would be dispatched by now
        assert 1 == uploads(runner.emu)
        assert not any(done(f) for f in late)
        store.down = False
        assert wait_for(lambda: all(done(f) for f in late), 15)
        assert 4 == uploads(runner.emu)
    finally:
        runner.stop(daemon)
        store.inner.close()
    lines = [r.getMessage() for r in caplog.records]
    assert 1 == sum("taking no new work until it is back" in m for m in lines)
    assert 1 == sum("the store is reachable again" in m for m in lines)


def test_the_watchdog_hears_of_an_outage_only_past_its_grace() -> None:
    """unwell() stays None through outage_seconds, then names the outage; the end clears it."""
    clock = FakeClock()
    probe_fails = True

    def probe() -> None:
        if probe_fails:
            raise StoreUnavailable(GONE)

    outage = StoreOutage(grace=60, settle=10, probe=probe, clock=clock)
    outage.lost(StoreUnavailable(GONE))
    clock.now += 60
    assert outage.unwell() is None
    clock.now += 1
    assert "store unreachable for 61 s" == outage.unwell()
    outage.tick()
    assert outage.down
    probe_fails = False
    clock.now += 1
    outage.tick()
    assert (False, None) == (outage.down, outage.unwell())


def test_new_work_waits_a_third_of_the_lease_after_the_store_returns() -> None:
    """Back from an outage, no claim for `settle` seconds: every live node renews its own
    leases before any takes another's over."""
    clock = FakeClock()
    outage = StoreOutage(grace=60, settle=10, probe=lambda: None, clock=clock)
    assert not outage.holding()
    outage.lost(StoreUnavailable(GONE))
    clock.now += 1
    outage.tick()
    assert (False, True) == (outage.down, outage.holding())
    clock.now += 10
    assert not outage.holding()


def test_a_task_running_through_an_outage_is_followed_to_its_end(
        runner: Runner, tmp_path: Path) -> None:
    """A task that ends while the store is gone is recorded once the store is back."""
    hot = tmp_path / "hot"
    hot.mkdir()
    store = Flaky(open_store(runner.state))
    rule = {"endpoint": "image_to_video", "output_dir": "renders",
            "request": {"model": "gen4.5", "promptText": "{stem} moves", "ratio": "1280:720",
                        "duration": 5}}
    cfg = runner.config([{"path": str(hot), "rule": rule}], rescan_interval=0)
    daemon = runner.start(cfg, journal=store, poll_interval=0.05)  # type: ignore[arg-type]
    try:
        shot = drop(hot / "shot.jpg")
        assert wait_for(lambda: daemon.follower.pending() == 1, 10)
        store.down = True
        assert wait_for(lambda: daemon.outage.down, 10)
        time.sleep(2.5)  # the emulator's task (2 s) ends meanwhile; its record must wait
        store.down = False
        assert wait_for(lambda: (sidecar.read_sidecar(shot) or {}).get("task", {}).get(
            "status") == "SUCCEEDED", 15)
        assert "succeeded" == store.inner.get(shot).state  # type: ignore[union-attr]
    finally:
        runner.stop(daemon)
        store.inner.close()
