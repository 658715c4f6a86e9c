"""The daemon as the status page's WebSource, through its public face only; start_web_for().

Thin on purpose: it reads what the Daemon shows publicly (its folders, journal, client
reference, pauses, health, candidate table and upload meter) and asks it to look at a file
again after a retry; nothing of its insides.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from runwatchd.config.load import Config
from runwatchd.errors import NetworkError, RunwayError, ServerError
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.service.metrics import Metrics
from runwatchd.service.web import start_web
from runwatchd.service.web.server import WebServer
from runwatchd.service.web.source import (
    HealthReport,
    ObserverHealth,
    Progress,
    RetryOutcome,
    local_output_path,
    mark_for_retry,
)
from runwatchd.store.base import Store
from runwatchd.watch.folders import Folder

log = logging.getLogger(__name__)

# How often the page may cost an API call to learn whether Runway answers and the credit balance.
PROBE_EVERY = 300.0


class _Client(Protocol):
    def check_key(self, *, attempts: int | None = None) -> dict[str, Any]: ...


class _ClientRef(Protocol):
    @property
    def current(self) -> _Client: ...


class _Folders(Protocol):
    def __iter__(self) -> Iterator[Folder]: ...


class _Health(Protocol):
    def healthy(self) -> bool: ...


class _Table(Protocol):
    def paths(self) -> list[str]: ...


class _Uploads(Protocol):
    def snapshot(self) -> dict[str, tuple[int, int]]: ...


class DaemonView(Protocol):
    """What the page reads of the daemon, all public (a protocol, so this module never imports
    the daemon package)."""

    @property
    def config(self) -> Config: ...
    @property
    def journal(self) -> Store: ...
    @property
    def folders(self) -> _Folders: ...
    @property
    def client_ref(self) -> _ClientRef: ...
    @property
    def pauses(self) -> Pauses: ...
    @property
    def health(self) -> _Health: ...
    @property
    def table(self) -> _Table: ...
    @property
    def uploads(self) -> _Uploads: ...

    def look_at(self, path: Path) -> bool: ...


class ApiProbe:
    """GET /v1/organization at most every PROBE_EVERY seconds, only while someone looks, in a
    thread of its own so a page never waits on the API."""

    def __init__(self, check: Callable[[], Mapping[str, object]], *,
                 clock: Callable[[], float] = time.monotonic, every: float = PROBE_EVERY) -> None:
        self._check = check
        self._clock = clock
        self._every = every
        self._lock = threading.Lock()
        self._due = float("-inf")
        self.reachable: bool | None = None
        self.credits: int | None = None

    def poke(self) -> None:
        """Start a check if the last one is old enough."""
        with self._lock:
            if self._clock() < self._due:
                return
            self._due = self._clock() + self._every
        threading.Thread(target=self.check_now, name="runwatchd-web-probe", daemon=True).start()

    def check_now(self) -> None:
        try:
            organization = self._check()
        except (NetworkError, ServerError):
            self.reachable = False
            return
        except RunwayError:
            self.reachable = True  # it answered, with an error about us (a rejected key, ...)
            return
        except Exception:  # noqa: BLE001 - a probe must never take the page down
            log.debug("web: API probe failed", exc_info=True)
            return
        self.reachable = True
        balance = organization.get("creditBalance")
        self.credits = balance if isinstance(balance, int) else None


class DaemonSource:
    """WebSource over a running Daemon."""

    def __init__(self, daemon: DaemonView, *, node: str | None = None) -> None:
        self._daemon = daemon
        self._node = node or socket.gethostname()
        self.probe = ApiProbe(lambda: daemon.client_ref.current.check_key(attempts=1))

    @property
    def node(self) -> str:
        return self._node

    def health(self) -> HealthReport:
        d = self._daemon
        self.probe.poke()
        observers = tuple(ObserverHealth(str(f.root), f.kind, f.state, f.healthy())
                          for f in d.folders)
        return HealthReport(healthy=d.health.healthy(), observers=observers,
                            api_reachable=self.probe.reachable, credits=self.probe.credits,
                            paused=d.pauses.key_rejected, credits_out=d.pauses.credits_out)

    def watched_folders(self) -> Sequence[Path]:
        return [f.root for f in self._daemon.folders]

    def waiting(self) -> Sequence[str]:
        return self._daemon.table.paths()

    def uploads(self) -> Mapping[str, Progress]:
        return {path: Progress(sent, total)
                for path, (sent, total) in self._daemon.uploads.snapshot().items()}

    def request_retry(self, path: str) -> RetryOutcome:
        outcome, _was = mark_for_retry(self._daemon.journal, path)
        if outcome is RetryOutcome.RETRYING:
            self._daemon.look_at(Path(path))  # a "retry" row goes to a worker once it settles
        return outcome

    def media_path(self, path: str) -> Path | None:
        return Path(path)

    def output_path(self, path: str, output: str) -> Path | None:
        return local_output_path(path, output)


def start_web_for(daemon: DaemonView, *, metrics: Metrics | None = None) -> WebServer | None:
    """The status page of `daemon`'s `[daemon] web`, started; None when it is off or its
    address cannot be bound (the page costs the page, never the uploads: one error line).
    ConfigError when the token file is unusable. `metrics` are served on /metrics when
    `[daemon] metrics` names the same address."""
    cfg = daemon.config.daemon
    if cfg.web is None:
        return None
    exposition = None
    if metrics is not None and cfg.metrics == cfg.web:
        if metrics.serving:
            metrics.stop()  # started on its own by a caller that did not know: one listener
        exposition = metrics.exposition
    try:
        return start_web(cfg.web, daemon.journal, DaemonSource(daemon),
                         token_file=cfg.web_token_file, metrics=exposition)
    except OSError as e:
        log.error("status page: cannot listen on %s (%s); running without it", cfg.web,
                  e.strerror or e)
        return None
