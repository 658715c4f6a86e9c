"""Where a command's inputs come from: the config file, the API secret, the API's URL, the state
directory and the store's URL, each from the command line, the environment, the config or a
default (the precedence of each is in its function's docstring).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from runwatchd import errors, fsutil
from runwatchd.config.load import Config, store_url_problem, url_problem
from runwatchd.runway.api import DEFAULT_BASE_URL

SECRET_ENV, BASE_URL_ENV = "RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL"
CONFIG_ENV = "RUNWATCHD_CONFIG"
CREDENTIAL_NAME = "runway_api_secret"
SYSTEM_CONFIG = Path("/etc/runwatchd/config.toml")
# A key file larger than this is a mistake (or an attack), not a key.
MAX_SECRET_BYTES = 64 * 1024

log = logging.getLogger(__name__)


def find_config(explicit: Path | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """-c, else $RUNWATCHD_CONFIG, else the first existing of the usual places; None if none."""
    if explicit is not None:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    for candidate in (Path("runwatchd.toml"), xdg / "runwatchd" / "config.toml", SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def find_secret(cfg: Config, env: Mapping[str, str]) -> tuple[str | None, str, list[str]]:
    """(secret, where it came from, what was tried); raises ConfigError for a broken source."""
    tried: list[str] = []
    value = env.get(SECRET_ENV)
    if value is not None and value.strip():
        return _clean_secret(value, SECRET_ENV), SECRET_ENV, tried
    tried.append(f"{SECRET_ENV} ({'empty' if value is not None else 'not set'})")
    secret_file = cfg.runway.api_secret_file
    if secret_file is not None:
        # A configured file that cannot be read is an error, not a reason to fall through.
        secret = _read_secret(secret_file, "runway.api_secret_file")
        return secret, f"api_secret_file {secret_file}", tried
    tried.append("[runway] api_secret_file (not set)")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / CREDENTIAL_NAME
        if cred.exists():
            return _read_secret(cred, "systemd credential"), f"systemd credential {cred}", tried
        tried.append(f"systemd credential {cred} (no such file)")
    else:
        tried.append(f"systemd credential $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME} "
                     "(CREDENTIALS_DIRECTORY not set)")
    return None, "", tried


def _read_secret(path: Path, what: str) -> str:
    try:
        raw = fsutil.read_small_file(path, MAX_SECRET_BYTES)
        secret = _clean_secret(raw.decode("utf-8"), f"{what} {path}")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise errors.ConfigError([f"{what}: cannot read {path} ({reason})"]) from None
    _warn_if_exposed(path, what)
    return secret


def _warn_if_exposed(path: Path, what: str) -> None:
    """A key that every user of the host can read is as good as published: say so once per
    read (the file still works; refusing it would stop a running service at its next reload)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        log.warning("%s %s is readable by every user on this host; restrict it with "
                    "`chmod 600 %s` (owned by the user runwatchd runs as)", what, path, path)


def _clean_secret(value: str, where: str) -> str:
    secret = value.strip()
    if not secret:
        raise errors.ConfigError([f"{where}: the API secret is empty"])
    if any(c.isspace() or not c.isprintable() for c in secret):
        raise errors.ConfigError([f"{where}: the API secret contains whitespace or control "
                                  "characters (more than one line?)"])
    return secret


def resolve_secret(cfg: Config, env: Mapping[str, str] = os.environ) -> str:
    """The API secret from RUNWAYML_API_SECRET, api_secret_file or the systemd credential."""
    secret, _, tried = find_secret(cfg, env)
    if secret is None:
        raise errors.ConfigError([f"no Runway API secret found; tried {', '.join(tried)}"])
    return secret


def resolve_base_url(cfg: Config, env: Mapping[str, str] = os.environ) -> str:
    """RUNWAYML_BASE_URL, else [runway] base_url, else Runway's API; no trailing slash."""
    if env.get(BASE_URL_ENV):
        url = env[BASE_URL_ENV].strip()
        if (why := url_problem(url)) is not None:
            raise errors.ConfigError([f"{BASE_URL_ENV}: {why}"])
        return url.rstrip("/")
    return (cfg.runway.base_url or DEFAULT_BASE_URL).rstrip("/")


def resolve_state_dir(cfg: Config, env: Mapping[str, str] = os.environ) -> Path:
    """[runway] state_dir, else systemd's $STATE_DIRECTORY (first entry), else the XDG state dir."""
    if cfg.runway.state_dir is not None:
        return cfg.runway.state_dir
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "runwatchd"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "state" / "runwatchd"


STORE_URL_ENV = "RUNWATCHD_STORE_URL"


def resolve_store_url(cfg: Config, env: Mapping[str, str] = os.environ) -> str | None:
    """$RUNWATCHD_STORE_URL, else [store] url, else None (SQLite in the state directory)."""
    raw = env.get(STORE_URL_ENV, "").strip()
    if raw:
        if (why := store_url_problem(raw)) is not None:
            raise errors.ConfigError([f"{STORE_URL_ENV}: {why}"])
        return raw
    return cfg.store.url
