"""The status page's test site: a FakeSource, a real WebServer on 127.0.0.1 over a SqliteStore."""

from __future__ import annotations

from pathlib import Path

import httpx
from helpers import FakeClock

from runwatchd.service.web.api import WebApi
from runwatchd.service.web.server import WebServer
from runwatchd.service.web.source import (
    HealthReport,
    ObserverHealth,
    Progress,
    RetryOutcome,
    local_output_path,
    mark_for_retry,
)
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore

TOKEN = "web-test-token-5d1c9e7a"


class FakeSource:
    """A WebSource whose live facts a test sets by hand; retry writes the store like the daemon."""

    def __init__(self, store: SqliteStore, folders: list[Path], node: str = "node-a") -> None:
        self.store = store
        self.folders = folders
        self.node = node
        self.health_now = HealthReport(
            healthy=True, api_reachable=True, credits=1234, paused=None,
            observers=tuple(ObserverHealth(str(f), "inotify", "watching", True) for f in folders))
        self.waiting_paths: list[str] = []
        self.progress: dict[str, Progress] = {}
        self.retried: list[str] = []

    def health(self) -> HealthReport:
        return self.health_now

    def watched_folders(self) -> list[Path]:
        return self.folders

    def waiting(self) -> list[str]:
        return self.waiting_paths

    def uploads(self) -> dict[str, Progress]:
        return self.progress

    def request_retry(self, path: str) -> RetryOutcome:
        outcome, _was = mark_for_retry(self.store, path)
        if outcome is RetryOutcome.RETRYING:
            self.retried.append(path)
        return outcome

    def media_path(self, path: str) -> Path | None:
        return Path(path)

    def output_path(self, path: str, output: str) -> Path | None:
        return local_output_path(path, output)


class Site:
    """A running page: its store, source, base URL and an HTTP client for it."""

    def __init__(self, store: SqliteStore, source: FakeSource, server: WebServer,
                 base: str, clock: FakeClock) -> None:
        self.store, self.source, self.server, self.base = store, source, server, base
        self.clock = clock  # the store's and the API's: rows are stamped with it
        self.http = httpx.Client(base_url=base, timeout=10)

    def put(self, path: Path | str, state: str, **fields: object) -> FileRecord:
        """Write a row stamped one second after the previous one (so "newest first" is sure)."""
        self.clock.advance(1)
        record = FileRecord(path=str(path), state=state, **fields)  # type: ignore[arg-type]
        self.store.put(record)
        self.server.api.catalog.invalidate()
        return record

    def files(self, **params: object) -> list[dict]:
        reply = self.http.get("/api/files", params=params)
        assert 200 == reply.status_code
        return reply.json()["files"]

    def row(self, path: Path | str) -> dict:
        return next(f for f in self.files(days=366) if f["path"] == str(path))


def start_site(tmp_path: Path, *, token: str | None = None, metrics=None,
               **server_kw: object) -> tuple[Site, WebServer]:
    hot = tmp_path / "hot"
    hot.mkdir(exist_ok=True)
    clock = FakeClock(1_800_000_000.0)
    store = SqliteStore(tmp_path / "state" / "journal.sqlite3", clock=clock)
    source = FakeSource(store, [hot])
    api = WebApi(store, source, token=token, metrics=metrics, clock=clock)
    server = WebServer("127.0.0.1:0", api, **server_kw)
    _host, port = server.start()
    return Site(store, source, server, f"http://127.0.0.1:{port}", clock), server
