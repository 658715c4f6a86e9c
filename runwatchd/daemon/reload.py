"""Reload on SIGHUP: a new configuration and client take over without a restart.

The API key is checked first (a bad reload keeps the running configuration); folders that changed
are watched afresh and scanned, paused work resumes, and the replaced client is closed once
nothing can be using it any more. Mixed into daemon.Daemon.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from runwatchd.errors import KeyRejected, RunwatchdError

if TYPE_CHECKING:
    from runwatchd.runway.client import RunwayClient
    from runwatchd.daemon.core import Daemon

log = logging.getLogger(__name__)

# Long enough for any poll or slot request started with a client replaced by a reload to end.
RETIRED_CLIENT_GRACE = 120.0


class ReloadMixin:
    """The daemon's _do_reload(), called from the main loop after request_reload()."""

    def _do_reload(self: Daemon) -> None:
        if self.notifier:
            self.notifier.reloading()
        try:
            config = self.config_loader() if self.config_loader else self.config
            client = self.client_factory(config) if self.client_factory else self.client
            try:
                self._check_key_alive(client)
            except KeyRejected:
                raise
            except RunwatchdError as e:  # the network, not the key: the new config still applies
                log.warning("could not check the API key on reload (%s); going on", e)
        except Exception as e:  # noqa: BLE001 - a bad reload keeps the running configuration
            log.error("reload failed, keeping the running configuration: %s", e)
            if self.notifier:
                self.notifier.ready(self._status_line())
            return
        if client is not self.client:
            # Uploads in flight and a poll under way may still use the old client: close it
            # once they are done (see _close_retired_clients), not now.
            self._retired_clients.append((self.clock(), self.client))
        self.config, self.client = config, client
        client.limit_transfers(config.runway.concurrency)
        self.client_ref.swap(client)
        old = {f.root: f for f in self.folders}
        new_roots = {fc.path for fc in config.folders}
        for root, folder in old.items():
            if root not in new_roots:
                folder.stop_watching()
                log.info("stopped watching %s", root)
        self.folders = [old[fc.path] if fc.path in old and old[fc.path].config == fc
                        else self._make_folder(fc) for fc in config.folders]
        for folder in self.folders:
            if folder.root not in old or old[folder.root] is not folder:
                if folder.root in old:
                    old[folder.root].stop_watching()
                folder.start_watching()
                self._scan(folder, "reload")
        self._paused = None
        self.pauses.resume()
        for record in self.journal.in_state("awaiting_credits"):
            folder = self._folder_for(Path(record.path))
            if folder is not None:
                self._candidate(Path(record.path), folder)
        log.info("configuration reloaded: %d folder(s)", len(self.folders))
        if self.notifier:
            self.notifier.ready(self._status_line())

    def _close_retired_clients(self: Daemon) -> None:
        """Close clients replaced by a reload once nothing can be using them any more."""
        while (self._retired_clients and not self._in_flight
               and self.clock() - self._retired_clients[0][0] > RETIRED_CLIENT_GRACE):
            _, old = self._retired_clients.pop(0)
            old.close()

    def _check_key_alive(self: Daemon, client: RunwayClient) -> None:
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
        while thread.is_alive() and not self._stop.is_set():
            thread.join(0.25)
            self._keepalive()
        if thread.is_alive():
            raise RuntimeError("stopping before the API key could be checked")
        if box:
            raise box[0]
