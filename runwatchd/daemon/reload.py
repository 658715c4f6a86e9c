"""Reload on SIGHUP: a new configuration and client take over without a restart.

The API key is checked first (a bad reload keeps the running configuration); folders that changed
are watched afresh and scanned, paused work resumes, and the replaced client is closed once
nothing can be using it any more.

A folder's `share` is not reloaded: the store was opened with the shares' names (store/
shared_paths.py) and every row of a shared folder is keyed by it, so a reload that adds, changes
or drops a share of a watched folder is refused as a whole (one log line: restart to change it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runwatchd.config.load import Config
from runwatchd.daemon.folder_set import FolderSet
from runwatchd.daemon.reconcile import Reconciler
from runwatchd.daemon.scheduler import Scheduler
from runwatchd.errors import ConfigError, KeyRejected, RunwatchdError
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.lifecycle.states import FileState
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.client_ref import ClientRef
from runwatchd.service.health import Health
from runwatchd.store.base import Store
from runwatchd.watch.folders import Folder

log = logging.getLogger(__name__)

# Long enough for any poll or slot request started with a client replaced by a reload to end.
RETIRED_CLIENT_GRACE = 120.0


class Reloader:
    """Owns the running configuration and the clients a reload replaced (closed once nothing
    can use them). reload() runs on the main loop, after Daemon.request_reload().

    `config_loader` reads the configuration anew (None: keep it), `client_factory` makes a client
    for it (None: keep the client); `candidate(path, folder)` hands a file to settle;
    `stopping` ends a key check early. Everyone who talks to Runway holds `client_ref` and reads
    the pauses, so swapping the one and resuming the other reaches them all."""

    def __init__(
        self,
        config: Config,
        client_ref: ClientRef,
        *,
        journal: Store,
        folders: FolderSet,
        reconciler: Reconciler,
        scheduler: Scheduler,
        pauses: Pauses,
        health: Health,
        candidate: Callable[[Path, Folder], None],
        config_loader: Callable[[], Config] | None = None,
        client_factory: Callable[[Config], RunwayClient] | None = None,
        stopping: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._client_ref = client_ref
        self._journal = journal
        self._folders = folders
        self._reconciler = reconciler
        self._scheduler = scheduler
        self._pauses = pauses
        self._health = health
        self._candidate = candidate
        self._config_loader = config_loader
        self._client_factory = client_factory
        self._stopping = stopping
        self._clock = clock
        self._retired: list[tuple[float, RunwayClient]] = []  # (when replaced, client)

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self._config

    def retired_clients(self) -> list[RunwayClient]:
        """Clients a reload replaced that are not closed yet (oldest first)."""
        return [client for _, client in self._retired]

    def reload(self) -> None:
        """Take on the configuration and client anew; on any failure keep the running ones."""
        self._health.reloading()
        current = self._client_ref.current
        try:
            config = self._config_loader() if self._config_loader else self._config
            if changed := share_changes(self._config, config):
                raise ConfigError([f"{', '.join(changed)}: a share names the folder's files in "
                                   "the store; restart runwatchd to change it"])
            client = self._client_factory(config) if self._client_factory else current
            try:
                self._check_key_alive(client)
            except KeyRejected:
                raise
            except RunwatchdError as e:  # the network, not the key: the new config still applies
                log.warning("could not check the API key on reload (%s); going on", e)
        except Exception as e:  # noqa: BLE001 - a bad reload keeps the running configuration
            log.error("reload failed, keeping the running configuration: %s", e)
            self._health.ready()
            return
        if client is not current:
            # Uploads in flight and a poll under way may still use the old client: close it
            # once they are done (see close_retired_clients), not now.
            self._retired.append((self._clock(), self._client_ref.swap(client)))
        self._config = config
        client.limit_transfers(config.runway.concurrency)
        self._scheduler.set_transfers(config.runway.concurrency)
        for fresh in self._folders.replace(config.folders):
            fresh.start_watching()
            self._reconciler.scan(fresh, "reload")
        self._pauses.resume()
        for record in self._journal.in_state(FileState.AWAITING_CREDITS):
            path = Path(record.path)
            folder = self._folders.folder_for(path)
            if folder is not None:
                self._candidate(path, folder)
        log.info("configuration reloaded: %d folder(s)", len(self._folders))
        self._health.ready()

    def close_retired_clients(self) -> None:
        """Close clients replaced by a reload once nothing can be using them any more."""
        while (self._retired and not self._scheduler.in_flight()
               and self._clock() - self._retired[0][0] > RETIRED_CLIENT_GRACE):
            _, old = self._retired.pop(0)
            old.close()

    def close_all(self) -> None:
        """At shutdown: close every replaced client."""
        while self._retired:
            _, old = self._retired.pop(0)
            old.close()

    def _check_key_alive(self, client: RunwayClient) -> None:
        """client.check_key() off the main loop, feeding the watchdog meanwhile: its retries can
        take minutes while the API is down, and a slow API is no wedged daemon."""
        box: list[BaseException] = []

        def check() -> None:
            try:
                client.check_key()
            except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
                box.append(e)

        thread = threading.Thread(target=check, name="runwatchd-key-check", daemon=True)
        thread.start()
        while thread.is_alive() and not self._stopping():
            thread.join(0.25)
            self._health.keepalive()
        if thread.is_alive():
            raise RuntimeError("stopping before the API key could be checked")
        if box:
            raise box[0]


def share_changes(old: Config, new: Config) -> list[str]:
    """The folders of `new` whose share differs from `old` (a new folder with a share counts;
    a new one without, or a folder removed, does not: no key changes meaning)."""
    before = {f.path: f.share for f in old.folders}
    return [f"{f.path}: share {before.get(f.path)!r} -> {f.share!r}" for f in new.folders
            if f.share != before.get(f.path)]
