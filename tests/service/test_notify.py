"""sd_notify sender and watchdog pinger, against real AF_UNIX datagram sockets."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwatchd.service.notify import Notifier, WatchdogPinger


class Receiver:
    """The systemd side: a bound datagram socket that collects notification messages."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def get(self, timeout: float = 2.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def pending(self) -> bool:
        # sendto on an AF_UNIX datagram socket queues the message before it returns, so a
        # non-blocking read right after the call proves whether anything was sent.
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return False
        return True


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    # tmp_path can exceed the 108-byte sun_path limit; a short private dir cannot.
    short = Path(tempfile.mkdtemp(prefix="rwn-"))
    path = short / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield Receiver(sock, str(path))
    finally:
        sock.close()
        shutil.rmtree(short)


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = "runwatchd-test-" + secrets.token_hex(8)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield Receiver(sock, "@" + name)
    finally:
        sock.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_socket_is_a_silent_no_op() -> None:
    """Without NOTIFY_SOCKET every call returns False and nothing raises."""
    n = Notifier.from_env({})
    assert False is n.enabled
    assert (False, False, False, False) == (n.ready(), n.status("x"), n.watchdog(), n.stopping())
    assert None is n.watchdog_interval()


def test_lifecycle_messages_reach_a_path_socket(receiver: Receiver) -> None:
    """READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 arrive on a filesystem socket."""
    n = Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": "60000000"})
    assert n.enabled
    assert n.ready("watching 2 folders")
    assert {"READY": "1", "STATUS": "watching 2 folders"} == receiver.get()
    assert n.status("3 queued, 1 uploading, 10 done")
    assert {"STATUS": "3 queued, 1 uploading, 10 done"} == receiver.get()
    assert n.watchdog()
    assert {"WATCHDOG": "1"} == receiver.get()
    assert n.stopping()
    assert {"STOPPING": "1"} == receiver.get()


def test_abstract_socket_is_supported(abstract_receiver: Receiver) -> None:
    """An '@name' NOTIFY_SOCKET is sent to the abstract namespace."""
    n = Notifier.from_env({"NOTIFY_SOCKET": abstract_receiver.env_value})
    assert n.ready()
    assert {"READY": "1"} == abstract_receiver.get()


def test_status_newlines_are_collapsed(receiver: Receiver) -> None:
    """A multi-line status cannot inject extra protocol fields."""
    n = Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value})
    n.status("line one\nREADY=1")
    assert {"STATUS": "line one READY=1"} == receiver.get()


def test_stopping_can_carry_a_status(receiver: Receiver) -> None:
    """stopping(status) sends both fields in one datagram."""
    Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value}).stopping("draining 2 uploads")
    assert {"STOPPING": "1", "STATUS": "draining 2 uploads"} == receiver.get()


def test_reloading_sends_monotonic_usec(receiver: Receiver) -> None:
    """RELOADING=1 comes with the CLOCK_MONOTONIC time in microseconds."""
    Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value}).reloading()
    msg = receiver.get()
    assert "1" == msg["RELOADING"]
    assert 0 < int(msg["MONOTONIC_USEC"])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_honours_pid(env: dict[str, str], expected: float | None) -> None:
    """The interval is half of WATCHDOG_USEC, and only for the process WATCHDOG_PID names."""
    assert expected == Notifier.from_env({"NOTIFY_SOCKET": "/run/x", **env}).watchdog_interval()


def test_from_env_changes_nothing() -> None:
    """Reading the environment leaves it untouched (children may still need it)."""
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid())}
    before = dict(env)
    Notifier.from_env(env)
    assert before == env


def test_unsupported_socket_kind_disables() -> None:
    """A vsock: address (VMs) is not handled here and simply disables notifications."""
    assert False is Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_send_failure_never_raises_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A vanished socket makes sends return False, with one debug line for all failures."""
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.DEBUG, logger="runwatchd.service.notify"):
        assert (False, False) == (n.ready(), n.watchdog())
    assert 1 == len([r for r in caplog.records if "sd_notify" in r.getMessage()])


def test_pinger_respects_the_interval(receiver: Receiver) -> None:
    """tick() pings at once, then not again until the interval has elapsed."""
    clock = FakeClock()
    n = Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": "20000000"})
    pinger = WatchdogPinger(n, healthy=lambda: True, clock=clock)
    assert 10.0 == pinger.interval
    assert pinger.tick()
    assert {"WATCHDOG": "1"} == receiver.get()
    clock.now += 9.9
    assert False is pinger.tick()
    assert False is receiver.pending()
    assert pytest.approx(0.1) == pinger.next_due()
    clock.now += 0.1
    assert pinger.tick()
    assert {"WATCHDOG": "1"} == receiver.get()


def test_pinger_stops_while_unhealthy(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """No WATCHDOG=1 while healthy() is false (one warning), and pings resume after."""
    clock = FakeClock()
    health = {"ok": True}
    n = Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value})
    pinger = WatchdogPinger(n, healthy=lambda: health["ok"], clock=clock, interval=5.0)
    assert pinger.tick()
    receiver.get()
    health["ok"] = False
    with caplog.at_level(logging.WARNING, logger="runwatchd.service.notify"):
        for _ in range(3):
            clock.now += 6
            assert False is pinger.tick()
    assert False is receiver.pending()
    assert 1 == len(caplog.records)
    health["ok"] = True
    assert pinger.tick()
    assert {"WATCHDOG": "1"} == receiver.get()


def test_pinger_treats_a_raising_check_as_unhealthy(receiver: Receiver) -> None:
    """An exception from healthy() withholds the ping instead of escaping into the loop."""

    def broken() -> bool:
        raise RuntimeError("boom")

    pinger = WatchdogPinger(Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value}), broken,
                            clock=FakeClock(), interval=1.0)
    assert False is pinger.tick()
    assert False is receiver.pending()


def test_pinger_off_without_watchdog_usec(receiver: Receiver) -> None:
    """With no WatchdogSec the pinger never sends and reports no due time."""
    pinger = WatchdogPinger(Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value}),
                            healthy=lambda: True, clock=FakeClock())
    assert (False, None) == (pinger.tick(), pinger.next_due())
    assert False is receiver.pending()
