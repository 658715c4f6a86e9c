"""Tests for runwatchd.service.web.daemon_source: the daemon's WebSource and start_web_for."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FakeClock, wait_for

from runwatchd.config.load import Config, parse_config
from runwatchd.errors import ConfigError, KeyRejected, NetworkError
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.service.metrics import Metrics
from runwatchd.service.web.daemon_source import ApiProbe, DaemonSource, start_web_for
from runwatchd.service.web.source import RetryOutcome
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore


class StubFolder:
    """A watched folder as the page sees it."""

    def __init__(self, root: Path) -> None:
        self.root, self.kind, self.state = root, "inotify", "watching"

    def healthy(self) -> bool:
        return True


class StubClient:
    def __init__(self) -> None:
        self.calls = 0

    def check_key(self, *, attempts: int | None = None) -> dict[str, Any]:
        self.calls += 1
        return {"creditBalance": 42}


class StubClientRef:
    def __init__(self) -> None:
        self.current = StubClient()


class StubHealth:
    def healthy(self) -> bool:
        return True


class StubTable:
    def __init__(self) -> None:
        self.waiting: list[str] = []

    def paths(self) -> list[str]:
        return list(self.waiting)


class StubUploads:
    def __init__(self) -> None:
        self.sent: dict[str, tuple[int, int]] = {}

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return dict(self.sent)


class StubDaemon:
    """The public face of a Daemon, as DaemonView describes it; records look_at()."""

    def __init__(self, tmp_path: Path, config: Config, folders: list[Path]) -> None:
        self.config = config
        self.state_dir = tmp_path / "state"
        self.journal = SqliteStore(self.state_dir / "journal.sqlite3")
        self.folders = [StubFolder(f) for f in folders]
        self.client_ref = StubClientRef()
        self.pauses = Pauses()
        self.health = StubHealth()
        self.table = StubTable()
        self.uploads = StubUploads()
        self.looked_at: list[Path] = []

    def look_at(self, path: Path) -> bool:
        self.looked_at.append(path)
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[StubDaemon]:
    """A stub daemon watching tmp/hot and tmp/hot/deep, with its page off."""
    hot = tmp_path / "hot"
    d = StubDaemon(tmp_path, parse_config({}, "test"), [hot, hot / "deep"])
    yield d
    d.journal.close()


def test_retry_marks_the_row_and_has_the_daemon_look_again(daemon: StubDaemon) -> None:
    """request_retry writes "retry" like the CLI, then asks the daemon to look at the file."""
    path = daemon.folders[1].root / "a.png"
    daemon.journal.put(FileRecord(str(path), "task_failed", task_id="t"))
    assert RetryOutcome.RETRYING == DaemonSource(daemon).request_retry(str(path))
    assert ("retry", None) == (daemon.journal.get(path).state, daemon.journal.get(path).task_id)
    assert [path] == daemon.looked_at


def test_a_refused_retry_wakes_nothing(daemon: StubDaemon) -> None:
    """A file in flight is not retried and the daemon is not asked to look."""
    path = daemon.folders[0].root / "a.png"
    daemon.journal.put(FileRecord(str(path), "running", task_id="t"))
    assert RetryOutcome.NOT_RETRYABLE == DaemonSource(daemon).request_retry(str(path))
    assert [] == daemon.looked_at


def test_waiting_and_upload_progress_come_from_the_daemon(daemon: StubDaemon) -> None:
    """Files settling and bytes sent per upload are the daemon's table and meter, as they are."""
    daemon.table.waiting = ["/hot/a.png"]
    daemon.uploads.sent = {"/hot/b.mov": (512, 2048)}
    source = DaemonSource(daemon)
    assert (["/hot/a.png"], {"/hot/b.mov": (512, 2048)}) == (
        list(source.waiting()), {p: (u.sent, u.total) for p, u in source.uploads().items()})


def test_health_reads_folders_pause_and_credits(daemon: StubDaemon) -> None:
    """Observers from the folders, the pauses from the daemon's Pauses, credits from the probe."""
    daemon.pauses.reject_key("key rejected")
    daemon.pauses.run_out_of_credits()
    source = DaemonSource(daemon, node="render-01")
    source.probe.check_now()
    health = source.health()
    assert ("render-01", True, "key rejected", True, 42, True) == (
        source.node, health.healthy, health.paused, health.credits_out, health.credits,
        health.api_reachable)
    assert [("inotify", "watching", True)] * 2 == [(o.kind, o.state, o.alive)
                                                   for o in health.observers]


@pytest.mark.parametrize(("error", "reachable"), [
    (NetworkError("connection refused"), False), (KeyRejected("401"), True)])
def test_probe_tells_an_unreachable_api_from_a_refusing_one(error: Exception,
                                                            reachable: bool) -> None:
    """A network failure means unreachable; an API answering with an error is reachable."""
    def check() -> dict[str, object]:
        raise error
    probe = ApiProbe(check)
    probe.check_now()
    assert (reachable, None) == (probe.reachable, probe.credits)


def test_probe_asks_the_api_at_most_every_interval() -> None:
    """poke() starts a check only once per interval, in a thread of its own."""
    clock = FakeClock()
    calls: list[int] = []
    probe = ApiProbe(lambda: calls.append(1) or {"creditBalance": 7}, clock=clock, every=300)
    probe.poke()
    probe.poke()
    assert wait_for(lambda: probe.credits == 7)
    clock.advance(301)
    probe.poke()
    assert wait_for(lambda: len(calls) == 2)
    assert 2 == len(calls)


def with_web(daemon: StubDaemon, **keys: object) -> None:
    daemon.config = parse_config({"daemon": keys}, "test")


def test_page_off_starts_nothing(daemon: StubDaemon) -> None:
    """Without [daemon] web there is no page."""
    assert None is start_web_for(daemon)


def test_a_busy_address_costs_the_page_not_the_daemon(daemon: StubDaemon,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A taken port logs one error and returns None."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with_web(daemon, web=f"127.0.0.1:{taken.getsockname()[1]}")
        with caplog.at_level(logging.ERROR):
            assert None is start_web_for(daemon)
    assert ["status page: cannot listen on"] == [
        r.getMessage()[:29] for r in caplog.records if r.levelno == logging.ERROR]


def test_an_unusable_token_file_is_a_config_error(daemon: StubDaemon, tmp_path: Path) -> None:
    """A token file that cannot be read stops the start like any config problem."""
    with_web(daemon, web=f"127.0.0.1:{free_port()}", web_token_file=str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="web_token_file"):
        start_web_for(daemon)


def test_metrics_on_the_same_address_move_onto_the_page(daemon: StubDaemon) -> None:
    """metrics == web: the page serves /metrics, and metrics' own listener is closed."""
    address = f"127.0.0.1:{free_port()}"
    with_web(daemon, web=address, metrics=address)
    metrics = Metrics(process_metrics=False)
    metrics.start_server(address)  # as a caller unaware of the page would
    server = start_web_for(daemon, metrics=metrics)
    assert server is not None
    try:
        reply = httpx.get(f"http://{address}/metrics")
        assert (200, False) == (reply.status_code, metrics.serving)
        assert "runwatchd_uploads_total" in reply.text
    finally:
        server.stop()
