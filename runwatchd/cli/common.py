"""What the commands share: exit codes, the config a command runs with, its client, its store.

A command's config comes from -c, $RUNWATCHD_CONFIG or the usual places (see config.py), with
directories given on the command line added as extra folders; its Runway client gets the secret
and base URL from config.resolve_*; its store is open_store's for the resolved state dir (keyed
by share where a folder names one: shared_store).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runwatchd.config import load as configmod
from runwatchd.config import sources
from runwatchd.errors import ConfigError

if TYPE_CHECKING:
    from runwatchd.runway.api import Operation
    from runwatchd.runway.client import RunwayClient
    from runwatchd.store.base import Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 78


def command_config(args: argparse.Namespace, extra_dirs: list[Path] | None = None,
                   required: bool = True) -> configmod.Config:
    """The config file's (-c or found), with `extra_dirs` added as folders; without a file, just
    `extra_dirs`, or no folders at all when not `required` (else ConfigError). `run --watch DIR`
    uses only the command line unless a config is named (-c, $RUNWATCHD_CONFIG): a
    ./runwatchd.toml found by chance must not add folders and rules nobody asked for."""
    named = getattr(args, "config", None) or os.environ.get(sources.CONFIG_ENV)
    if extra_dirs and getattr(args, "watch", None) and not named:
        return configmod.config_for_dirs(extra_dirs)
    path = sources.find_config(getattr(args, "config", None))
    if path is None:
        if extra_dirs:
            return configmod.config_for_dirs(extra_dirs)
        if not required:
            return configmod.config_for_dirs([])
        raise ConfigError(["no config file found (tried -c, $RUNWATCHD_CONFIG, ./runwatchd.toml, "
                           "~/.config/runwatchd/config.toml, /etc/runwatchd/config.toml); "
                           "write one with `runwatchd init` or use --watch DIR"])
    cfg = configmod.load_config(path)
    if extra_dirs:
        known = {f.path for f in cfg.folders}
        added = tuple(f for f in configmod.config_for_dirs(extra_dirs).folders
                      if f.path not in known)
        cfg = dataclasses.replace(cfg, folders=cfg.folders + added)
    return cfg


def make_client(cfg: configmod.Config, *,
                on_retry: Callable[[Operation, BaseException, float], None] | None = None,
                attempts: int | None = None) -> RunwayClient:
    secret = sources.resolve_secret(cfg)
    from runwatchd.runway.client import RunwayClient
    from runwatchd.service.logs import install_secret_filter

    install_secret_filter(secret)
    return RunwayClient(secret, sources.resolve_base_url(cfg), on_retry=on_retry,
                        **_client_options(cfg, attempts))


RETRY_DELAY_ENV = "RUNWATCHD_RETRY_BASE_DELAY"


def _client_options(cfg: configmod.Config, attempts: int | None = None) -> dict[str, Any]:
    """$RUNWATCHD_RETRY_BASE_DELAY (seconds, for tests against a faulty emulator) replaces the
    1 s first retry delay; deliberately not a config key: production has no reason to change it.
    `attempts` replaces the client's default number of tries per request."""
    timeout = getattr(cfg.runway, "timeout", None)
    options: dict[str, Any] = {"timeout": timeout} if timeout else {}
    policy: dict[str, Any] = {"max_attempts": attempts} if attempts else {}
    raw = os.environ.get(RETRY_DELAY_ENV, "").strip()
    if raw:
        try:
            delay = float(raw)
        except ValueError:
            delay = -1.0
        if not 0.0 <= delay <= 60.0:
            raise ConfigError([f"{RETRY_DELAY_ENV}: expected seconds between 0 and 60, "
                               f"got {raw!r}"])
        policy["initial_delay"] = delay
    if policy:
        from runwatchd.runway.retries import RetryPolicy

        options["retry"] = RetryPolicy(**policy)
    return options


def open_journal(cfg: configmod.Config) -> tuple[Path, Store]:
    """(state dir, its store: [store] url or $RUNWATCHD_STORE_URL, else SQLite in the state dir);
    the caller closes the store. A PostgreSQL pool gets two connections per upload slot and a
    few for the scans, retries and the status page."""
    from runwatchd.store import open_store

    state_dir = sources.resolve_state_dir(cfg)
    store = open_store(state_dir, sources.resolve_store_url(cfg), node=cfg.store.node,
                       max_connections=cfg.runway.concurrency * 2 + 4)
    return state_dir, shared_store(store, cfg.folders)


def shared_store(store: Store, folders: Iterable[configmod.FolderConfig]) -> Store:
    """`store` naming the files of folders with a `share` by share-relative keys (store/
    shared_paths.py), or `store` itself when no folder names one (rows keyed by absolute paths,
    as on a single host). The wrapper owns `store`: closing it closes both."""
    from runwatchd.store.shared_paths import SharedPaths

    shares = {f.path: f.share for f in folders if f.share is not None}
    return SharedPaths(store, shares) if shares else store
