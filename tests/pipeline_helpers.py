"""A rig for the processor's tests: a hot folder, a state dir and the emulator, FileProcessors and
scan-mode Daemons built on them, and crash points injected through the client and the store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon_helpers import harness

from runwatchd import fsutil
from runwatchd.cli.demo import make_png
from runwatchd.config.load import Config, parse_config
from runwatchd.daemon.core import Daemon
from runwatchd.daemon.policy import SCAN
from runwatchd.emulator import Emulator
from runwatchd.errors import RetryableError
from runwatchd.generation.rules import Rule, parse_rule
from runwatchd.generation.rules_files import RuleResolver
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.processor import FileProcessor, Job
from runwatchd.runway.client import RunwayClient, UploadResult
from runwatchd.runway.client_ref import ClientRef
from runwatchd.runway.download import Fetched
from runwatchd.runway.retries import RetryPolicy
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore

SECRET = "pipeline-test-key"
REQUEST = {"model": "gen4.5", "promptText": "{stem} in {folder} ({name})", "ratio": "1280:720",
           "duration": 5}
RULE = {"endpoint": "image_to_video", "output_dir": "renders", "request": REQUEST}
FAST_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.01)


class Crash(Exception):
    """Raised at a crash point: no runwatchd code catches it to write anything."""


@dataclass
class CrashPoint:
    """The first call of `method` (of the client or the store) that `when(*args)` accepts
    crashes, before or `after` the real call; `leave(*args)` leaves what a kill there would."""

    method: str
    after: bool = False
    when: Callable[..., bool] = lambda *args: True
    leave: Callable[..., None] | None = None
    stop: Callable[[], None] = lambda: None  # the daemon's request_stop, once it exists
    fired: threading.Event = field(default_factory=threading.Event)

    def around(self, method: str, real: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if method != self.method or self.fired.is_set() or not self.when(*args):
            return real(*args, **kw)
        self.fired.set()
        if self.after:
            real(*args, **kw)
        if self.leave:
            self.leave(*args)
        self.stop()
        raise Crash(f"crash {'after' if self.after else 'in'} {method}")


class RigClient(RunwayClient):
    """The emulator's client, keeping every generation request body sent; may crash once."""

    def __init__(self, url: str, crash: CrashPoint | None = None, timeout: float = 30.0) -> None:
        super().__init__(SECRET, url, retry=FAST_RETRY, timeout=timeout)
        self.bodies: list[dict[str, Any]] = []
        self.crash = crash or CrashPoint("")

    def create_task(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        return self.crash.around("create_task", super().create_task, endpoint, body)

    def wait_to_resubmit(self, endpoint: str, attempt: int, delay: float,
                         error: RetryableError) -> None:
        self.crash.around("wait_to_resubmit", super().wait_to_resubmit, endpoint, attempt,
                          delay, error)

    def upload(self, path: Path, *, progress: Callable[[int], None] | None = None
               ) -> UploadResult:
        return self.crash.around("upload", super().upload, path, progress=progress)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self.crash.around("get_task", super().get_task, task_id)

    def download_output(self, url: str, directory: Path,
                        choose: Callable[[str | None], Path]) -> Fetched:
        return self.crash.around("download", super().download_output, url, directory, choose)


class RigStore(SqliteStore):
    """The journal; may crash once at one of the writes that order the lifecycle."""

    def __init__(self, path: Path, crash: CrashPoint | None = None) -> None:
        super().__init__(path)
        self.crash = crash or CrashPoint("")

    def put(self, record: FileRecord) -> None:
        self.crash.around("put", super().put, record)

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None:
        return self.crash.around("put_unless_claimed", super().put_unless_claimed, record)

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        return self.crash.around("claim_submit", super().claim_submit, record)

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool:
        return self.crash.around("update_if", super().update_if, path, expected_state,
                                 **changes)


def make_rule(table: dict[str, Any] | None = None) -> Rule:
    rule, problems = parse_rule(table or RULE, "test", "rule")
    assert [] == problems
    assert rule is not None
    return Rule(rule.endpoint, rule.output_dir, rule.input_field, rule.request, rule.source, "hot")


class Rig:
    """A hot folder, a state dir and the emulator; builds FileProcessors and scan-mode Daemons."""

    def __init__(self, tmp_path: Path, emulator: Emulator) -> None:
        self.root = tmp_path / "hot"
        self.root.mkdir()
        self.state = tmp_path / "state"
        self.emu = emulator
        self.client = RigClient(emulator.url)
        self.journal = SqliteStore(self.state / "journal.sqlite3")
        self.followed: list[tuple[Path, str, Path]] = []
        self.client_timeout = 30.0  # of the clients scan() builds

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self.client.bodies

    def close(self) -> None:
        self.client.close()
        self.journal.close()

    def still(self, name: str = "shot.png", seed: int = 0) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        make_png(path, seed=seed)
        return path

    def processor(self, store: SqliteStore | None = None, **kw: Any) -> FileProcessor:
        return FileProcessor(ClientRef(self.client), store or self.journal, Pauses(),
                             follow=lambda *a: self.followed.append(a), **kw)

    def job(self, path: Path, rule: Rule | None = None) -> Job:
        return Job(path, self.root, RuleResolver(self.root, rule) if rule else None)

    def stats(self) -> dict[str, Any]:
        return self.emu.stats()

    def config(self, rule: dict[str, Any] | None = RULE, recursive: bool = True) -> Config:
        folder: dict[str, Any] = {"path": str(self.root), "recursive": recursive}
        if rule is not None:
            folder["rule"] = rule
        return parse_config({"runway": {"state_dir": str(self.state), "concurrency": 2},
                             "daemon": {"grace_seconds": 5},
                             "defaults": {"settle_seconds": 0, "rescan_interval": 0},
                             "folder": [folder]}, "test")

    def scan(self, crash: CrashPoint | None = None, cfg: Config | None = None
             ) -> tuple[int, Daemon]:
        """A scan-mode daemon on its own client and journal, as a fresh process would have;
        `crash` makes it crash (and stop) at that point."""
        client = RigClient(self.emu.url, crash, self.client_timeout)
        journal = RigStore(self.state / "journal.sqlite3", crash)
        try:
            with harness(self.state, self.emu.url, SECRET) as h:
                daemon = h.daemon(cfg or self.config(), client=client, journal=journal,
                                  policy=SCAN, poll_interval=0.02)
                if crash is not None:
                    crash.stop = daemon.request_stop
                return h.run(daemon), daemon
        finally:
            client.close()
            journal.close()


def task_part(path: Path) -> dict[str, Any] | None:
    data = sidecar.read_sidecar(path)
    assert data is not None
    task: dict[str, Any] | None = data.get("task")
    return task


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if fsutil.TEMP_MARK in p.name]
