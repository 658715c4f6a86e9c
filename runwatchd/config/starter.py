"""Configuration as text for people: the commented starter file and the check-config summary.

`runwatchd init` writes `starter_config()`, which shows every key with its default (or an example)
and must load cleanly; `runwatchd check-config` prints `explain()`, which says where each setting
comes from and names the source of the API secret, never the secret itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from runwatchd import errors
from runwatchd.config.load import (
    Config,
    DaemonConfig,
    FolderSettings,
    RunwayConfig,
    StoreConfig,
)
from runwatchd.config.sources import (
    CREDENTIAL_NAME,
    find_secret,
    resolve_base_url,
    resolve_state_dir,
    resolve_store_url,
)
from runwatchd.config.web_token import inspect_web_token
from runwatchd.generation import rules
from runwatchd.runway.api import DEFAULT_BASE_URL
from runwatchd.store.open import describe as describe_store


def _kv(key: str, value: object, commented: bool = False) -> str:
    # tomli_w does the quoting and escaping; it refuses None, so optional keys get an example.
    text = tomli_w.dumps({key: value}).rstrip("\n")
    return "\n".join("# " + line for line in text.split("\n")) if commented else text


def starter_config(folder: str = "~/runway-inbox") -> str:
    """A commented starter config; every key is shown with its default (or an example), and
    one [[folder]] at `folder` (the service's starter uses the unit's /srv/hot)."""
    s, r, d, st = FolderSettings(), RunwayConfig(), DaemonConfig(), StoreConfig()
    request = {"model": "gen4.5", "promptText": "{stem} comes to life", "ratio": "1280:720",
               "duration": 5}
    lines = [
        "# runwatchd configuration (TOML). Check it with: runwatchd check-config -c THIS_FILE",
        "# Values shown are the defaults. Environment variables win over this file; paths are",
        "# relative to this file; '~' means your home directory. Unknown keys are errors.",
        "", "[runway]",
        "# API base URL; RUNWAYML_BASE_URL overrides it.", _kv("base_url", DEFAULT_BASE_URL, True),
        "# File holding the API secret, used when RUNWAYML_API_SECRET is not set; else the",
        f"# systemd credential $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}. Never put the secret",
        "# itself in this file.",
        _kv("api_secret_file", "/etc/runwatchd/secret", True),
        "# Uploads in flight at once (1-64).",
        _kv("concurrency", r.concurrency),
        "# Seconds one HTTP request may take before it counts as failed (and is retried).",
        _kv("timeout", r.timeout),
        "# Where runwatchd keeps its journal; else $STATE_DIRECTORY, else",
        "# ~/.local/state/runwatchd.",
        _kv("state_dir", "/var/lib/runwatchd", True),
        "", "[daemon]",
        "# Prometheus metrics on host:port; absent means off.",
        _kv("metrics", "127.0.0.1:9464", True),
        "# A status page for the people who drop files, on host:port; absent means off. Keep",
        "# it on 127.0.0.1 and put a reverse proxy (TLS, logins) in front for other machines;",
        "# the same address as metrics serves /metrics there too.",
        _kv("web", "127.0.0.1:8787", True),
        "# File holding a token (one line, 16+ characters, not world-readable) that lets the",
        "# page retry failed files; absent means the page is read-only.",
        _kv("web_token_file", "/etc/runwatchd/web-token", True),
        "# Seconds in-flight uploads may finish in after SIGTERM.",
        _kv("grace_seconds", d.grace_seconds),
        "# Log lines as \"text\" or \"json\".",
        _kv("log_format", d.log_format),
        "# A warning line when the Runway credit balance falls under this (read every 10 min).",
        _kv("credits_warning_below", d.credits_warning_below),
        "", "[store]",
        "# Where the daemon's memory lives. Default: SQLite (journal.sqlite3) in the state",
        "# directory, one host. A PostgreSQL URL lets several hosts share one store (needs",
        "# runwatchd[postgres]; give it a database of its own); RUNWATCHD_STORE_URL overrides",
        "# it. Keep a password out of this file: use ~/.pgpass or PGPASSWORD instead.",
        _kv("url", "postgresql://runwatchd@db.example/runwatchd", True),
        "# This host's name in a shared store; default: the host name.",
        _kv("node", "render-01", True),
        "# Seconds a node's claim on a file's work outlives its last heartbeat: how soon the",
        "# other nodes take a vanished node's uploads and tasks over (beats every third).",
        _kv("lease_seconds", st.lease_seconds),
        "# Seconds the store may be unreachable (no new work meanwhile) before systemd's",
        "# watchdog is told this node is unwell (it restarts the service).",
        _kv("outage_seconds", st.outage_seconds),
        "", "[defaults]  # every folder inherits these; any of them may be set per folder",
        "# Seconds a file must stay unchanged (size, mtime, ctime, inode) before it is uploaded.",
        _kv("settle_seconds", s.settle_seconds),
        "# auto, inotify or polling; auto polls on network mounts (NFS, SMB, sshfs, ...).",
        _kv("observer", s.observer),
        "# Seconds between polls when polling.", _kv("poll_interval", s.poll_interval),
        "# Seconds between full reconcile scans (0 = off); catches anything events missed.",
        _kv("rescan_interval", s.rescan_interval),
        "# File name patterns to upload (case-insensitive, any depth).",
        _kv("include", list(s.include)),
        "# Extra patterns to ignore (files or directories), added to the built-in list;",
        "# a folder's own include/ignore replaces these, it does not add to them.",
        _kv("ignore", list(s.ignore)),
        "", "# One [[folder]] table per watched folder. The folder need not exist yet.",
        "[[folder]]", _kv("path", folder),
        "# Also watch subfolders.", _kv("recursive", True),
        "# The folder's name in a store several hosts share, for hosts that mount it at",
        "# different places (/mnt/nas/hot here, /Volumes/hot there: both say \"hot\"). Default:",
        "# the folder's absolute path. Changing it needs a restart; rows are keyed by it.",
        _kv("share", "hot", True),
        "# Per-folder override of a [defaults] key:", _kv("settle_seconds", 5.0, True),
        "",
        "# Optional: a generation for every file (this spends credits). Keys: endpoint,",
        "# output_dir (default \"outputs\", relative to the folder, or absolute), input_field",
        "# (the request field that gets the file's runway:// URI; chosen per endpoint), name",
        "# (default: the folder's name), and request (sent as-is, Runway's own field names).",
        "# {stem}, {name} and {folder} in strings are replaced per file; a <file>.prompt.txt",
        f"# beside a file replaces promptText. A {rules.RULES_FILENAME} file in a folder",
        "# (same keys, [request] table) overrides this rule there and below.",
        "# [folder.rule]", _kv("endpoint", "image_to_video", True),
        _kv("output_dir", "renders", True),
        _kv("input_field", "promptImage", True), "# [folder.rule.request]",
        "\n".join(_kv(k, v, True) for k, v in request.items()),
    ]
    return "\n".join(lines) + "\n"


def write_starter(path: Path, text: str | None = None) -> None:
    """Write `text` (default: starter_config()) to `path`, atomically; FileExistsError if it
    exists."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.runwatchd-tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(starter_config() if text is None else text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # unlike rename, fails if someone created `path` meanwhile
        except FileExistsError:
            raise FileExistsError(f"{path} exists; not overwriting it") from None
        except OSError:
            os.replace(tmp, path)  # no hard links on this filesystem (some FUSE/SMB mounts)
    finally:
        tmp.unlink(missing_ok=True)


def _secret_source(cfg: Config, env: Mapping[str, str]) -> str:
    try:
        secret, where, tried = find_secret(cfg, env)
    except errors.ConfigError as e:
        return f"PROBLEM: {e}"
    return f"from {where}" if secret is not None else f"NOT FOUND (tried {', '.join(tried)})"


def _web_summary(d: DaemonConfig) -> str:
    if d.web is None:
        return "off" + (" (web_token_file is set but unused)" if d.web_token_file else "")
    if d.web_token_file is None:
        return f"http://{d.web}/ (read-only: no web_token_file)"
    try:
        _token, warnings = inspect_web_token(d.web_token_file)
    except errors.ConfigError as e:
        return f"http://{d.web}/; PROBLEM: {'; '.join(e.problems)}"
    notes = "".join(f"; WARNING: {w}" for w in warnings)
    return f"http://{d.web}/ (retry allowed with the token in {d.web_token_file}){notes}"


def _store_summary(cfg: Config, env: Mapping[str, str]) -> str:
    """Which store, without the URL's password; "PROBLEM: ..." when it cannot be used."""
    try:
        where = describe_store(resolve_state_dir(cfg, env), resolve_store_url(cfg, env))
    except errors.ConfigError as e:
        return f"PROBLEM: {'; '.join(e.problems)}"
    return f"{where}; node {cfg.store.node or '(the host name)'}"


def explain(cfg: Config, env: Mapping[str, str] = os.environ) -> str:
    """A human summary for check-config; names where the secret comes from, never the secret."""
    try:
        base_url = resolve_base_url(cfg, env)
    except errors.ConfigError as e:
        base_url = f"PROBLEM: {e}"
    r, d = cfg.runway, cfg.daemon
    lines = [
        f"config: {cfg.source or 'none (--watch directories, defaults)'}",
        f"Runway API: {base_url}",
        f"API secret: {_secret_source(cfg, env)}",
        f"uploads in flight: {r.concurrency}; request timeout {r.timeout:g} s",
        f"state dir: {resolve_state_dir(cfg, env)}",
        f"store: {_store_summary(cfg, env)}",
        f"metrics: {d.metrics or 'off'}; shutdown grace {d.grace_seconds:g} s; logs {d.log_format}; "
        f"credits warning below {d.credits_warning_below:g}",
        f"status page: {_web_summary(d)}",
    ]
    if not cfg.folders:
        lines.append("folders: none configured (use [[folder]] or --watch DIR)")
    for folder in cfg.folders:
        s = folder.settings
        missing = "" if folder.path.is_dir() else " (missing now; watched once it appears)"
        rescan = f"{s.rescan_interval:g} s" if s.rescan_interval else "off"
        share = (f"  share {folder.share!r} (its files' names in the store)" if folder.share
                 else "  no share: the store names its files by their absolute paths")
        lines += [
            f"folder {folder.path}{missing}", share,
            f"  {'recursive' if folder.recursive else 'top level only'}; observer {s.observer} "
            f"(requested); settle {s.settle_seconds:g} s; poll {s.poll_interval:g} s; "
            f"rescan {rescan}",
            f"  include {', '.join(s.include)}",
            f"  ignore {', '.join(s.ignore) or '(built-in list only)'}",
        ]
        rule = folder.rule
        if rule is None:
            lines.append("  rule: none (upload and sidecar only)")
        else:
            lines += [f"  rule {rule.name}: {rule.endpoint}, {_what_runs(rule.request)}, "
                      f"file URI in {rules.uri_places(rule)}",
                      f"  outputs to {rule.output_path(folder.path)}"]
        lines.append(f"  a {rules.RULES_FILENAME} in it or below sets the rule for that subtree")
    return "\n".join(lines)


def _what_runs(request: Mapping[str, Any]) -> str:
    """The model a rule names; the saved config of a model router (generate/*); else none
    (the recipes pick their own)."""
    if "model" in request:
        return f"model {request['model']}"
    if "configId" in request:
        return f"config {request['configId']}"
    return "no model"
