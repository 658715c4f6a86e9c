"""Configuration: one TOML file -> frozen dataclasses, with every problem reported at once.

Precedence, highest first: command line > environment > TOML > defaults.

    setting      command line  environment          TOML                      default
    config file  -c PATH       RUNWATCHD_CONFIG     -                         ./runwatchd.toml,
                                         ~/.config/runwatchd/config.toml, /etc/runwatchd/config.toml
    folders      --watch DIR   -                    [[folder]] path           -
    API secret   -             RUNWAYML_API_SECRET  [runway] api_secret_file  systemd credential
                                                    $CREDENTIALS_DIRECTORY/runway_api_secret
    base URL     -             RUNWAYML_BASE_URL    [runway] base_url         api.dev.runwayml.com
    state dir    -             STATE_DIRECTORY (*)  [runway] state_dir        ~/.local/state/...
    store        -             RUNWATCHD_STORE_URL  [store] url               SQLite in state dir
    (*) systemd's StateDirectory= is a service's default, so the TOML key wins over it.

Every key is documented in `config_text.starter_config()`. Unknown keys are errors (a typo
must never be silently ignored), types are strict (a bool is not a number), relative paths are
relative to the config file, and a folder that does not exist yet is fine (a NAS may mount later).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runwatchd import errors, fsutil
from runwatchd.config.scopes import output_dir_problem
from runwatchd.config.tomlcheck import check_type, describe, parse_toml_text
from runwatchd.generation import rules
from runwatchd.generation.rules import Rule
from runwatchd.store.shared_paths import share_problem, shares_problem

DEFAULT_INCLUDE = ("*.jpg", "*.jpeg", "*.png", "*.webp", "*.mp4", "*.mov", "*.webm",
                   "*.mp3", "*.wav", "*.flac", "*.m4a", "*.aac")
OBSERVERS = ("auto", "inotify", "polling")
LOG_FORMATS = ("text", "json")
# A config file larger than this is a mistake (or an attack), not a config.
MAX_CONFIG_BYTES = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderSettings:
    settle_seconds: float = 2.0
    observer: str = "auto"
    poll_interval: float = 10.0
    rescan_interval: float = 900.0  # 0 turns the periodic reconcile scan off
    include: tuple[str, ...] = DEFAULT_INCLUDE
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class FolderConfig:
    path: Path
    recursive: bool
    settings: FolderSettings
    rule: Rule | None
    # The folder's identity in the store (store/shared_paths.py): hosts that mount one share at
    # different places name it alike. None: the folder's absolute path, as on a single host.
    share: str | None = None

    def covers(self, directory: Path) -> bool:
        """Whether files directly in `directory` belong to this folder."""
        return directory == self.path or (self.recursive and self.path in directory.parents)

    def contains(self, path: Path) -> bool:
        """Whether the file `path` belongs to this folder."""
        return self.covers(path.parent)


@dataclass(frozen=True)
class RunwayConfig:
    base_url: str | None = None
    api_secret_file: Path | None = None
    concurrency: int = 4
    state_dir: Path | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class DaemonConfig:
    metrics: str | None = None
    web: str | None = None  # the status page's host:port; None: off
    web_token_file: Path | None = None  # lets the page retry files; read at start
    grace_seconds: float = 30.0
    log_format: str = "text"
    credits_warning_below: float = 100.0  # a WARNING line when the balance falls under it


@dataclass(frozen=True)
class StoreConfig:
    url: str | None = None  # None: SQLite in the state dir; $RUNWATCHD_STORE_URL wins over it
    node: str | None = None  # this host's name in a shared store; None: the host name
    # A lease on a file's work lasts this long without a heartbeat: how soon the others take
    # a vanished node's work over (beats come every third of it).
    lease_seconds: float = 30.0
    # How long the store may be unreachable before systemd's watchdog hears the node is unwell.
    outage_seconds: float = 60.0


@dataclass(frozen=True)
class Config:
    runway: RunwayConfig
    defaults: FolderSettings
    folders: tuple[FolderConfig, ...]
    daemon: DaemonConfig
    source: Path | None
    store: StoreConfig = StoreConfig()

    def folder_covering(self, directory: Path) -> FolderConfig | None:
        """The most specific folder whose files directly in `directory` are (nested folders:
        the deepest), or None."""
        return max((f for f in self.folders if f.covers(directory)),
                   key=lambda f: len(f.path.parts), default=None)


Check = Callable[[Any], str | None]


def _between(low: float, high: float, *, above: bool = False) -> Check:
    """low <= v <= high (low < v with `above`). The upper bounds keep a typo such as 1e308 from
    overflowing a timer, the lower ones keep 1e-9 from turning a poll loop into a busy loop;
    NaN fails both comparisons and is refused too."""
    op = ">" if above else ">="

    def check(v: float) -> str | None:
        if (v > low or (v == low and not above)) and v <= high:
            return None
        return f"must be {op} {low:g} and <= {high:g}, got {v!r}"
    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda v: None if v in choices else (
        f"expected one of {', '.join(map(repr, choices))}, got {v!r}")


def url_problem(v: str) -> str | None:
    ok = re.fullmatch(r"https?://[^\s/]+(/\S*)?", v)
    return None if ok else f"expected an http(s) URL, got {v!r}"


STORE_SCHEMES = ("sqlite", "postgresql", "postgres")


def store_url_problem(v: str) -> str | None:
    """Only the scheme is checked here (store/open.py checks the rest when it opens the store);
    the message never repeats the URL: it may carry a password."""
    scheme = v.partition("://")[0] if "://" in v else ""
    if scheme in STORE_SCHEMES:
        return None
    return ("expected sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST/DB, got "
            f"{'scheme ' + repr(scheme) if scheme else 'no scheme'}")


def _non_empty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _host_port(v: str) -> str | None:
    host, _, port = v.rpartition(":")
    if host.strip("[]") and port.isdigit() and 1 <= int(port) <= 65535:
        return None
    return f"expected host:port such as '127.0.0.1:9464', got {v!r}"


_DAY = 86400.0
# key: (TOML kind, extra check). Every [defaults] key may also be set per folder.
_SETTINGS: dict[str, tuple[str, Check | None]] = {
    "settle_seconds": ("number", _between(0, _DAY)),
    "observer": ("string", _one_of(OBSERVERS)),
    "poll_interval": ("number", _between(0.01, 3600)),
    "rescan_interval": ("number", _between(0, 7 * _DAY)),
    "include": ("strings", lambda v: None if v else "must list at least one pattern"),
    "ignore": ("strings", None),
}
_RUNWAY: dict[str, tuple[str, Check | None]] = {
    "base_url": ("string", url_problem),
    "api_secret_file": ("string", _non_empty),
    "concurrency": ("integer", lambda v: None if 1 <= v <= 64 else f"must be 1 to 64, got {v}"),
    "state_dir": ("string", _non_empty),
    "timeout": ("number", _between(0, 3600, above=True)),
}
_DAEMON: dict[str, tuple[str, Check | None]] = {
    "metrics": ("string", _host_port),
    "web": ("string", _host_port),
    "web_token_file": ("string", _non_empty),
    "grace_seconds": ("number", _between(0, 3600)),
    "log_format": ("string", _one_of(LOG_FORMATS)),
    "credits_warning_below": ("number", _between(0, 1e12)),
}
_STORE: dict[str, tuple[str, Check | None]] = {
    "url": ("string", store_url_problem),
    "node": ("string", _non_empty),
    "lease_seconds": ("number", _between(1, 3600)),
    "outage_seconds": ("number", _between(0, _DAY)),
}
_FOLDER_KEYS = ("path", "recursive", "rule", "share", *_SETTINGS)
_TOP_KEYS = ("runway", "defaults", "daemon", "store", "folder")


class _Reader:
    """Collects problems instead of raising, so one run of check-config lists all of them."""

    def __init__(self, base_dir: Path) -> None:
        self.problems: list[str] = []
        self.base_dir = base_dir

    def table(self, value: object, keypath: str, known: tuple[str, ...]) -> dict[str, Any]:
        if (why := check_type(value, "table")) is not None:
            self.problems.append(f"{keypath}: {why}")
            return {}
        assert isinstance(value, dict)
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                where = f"{keypath}.{key}" if keypath else key
                self.problems.append(f"{where}: unknown key ({hint})")
        return value

    def values(self, table: dict[str, Any], keypath: str,
               spec: dict[str, tuple[str, Check | None]]) -> dict[str, Any]:
        """The valid values of `table` for the keys in `spec`, converted (floats, tuples, paths)."""
        out: dict[str, Any] = {}
        for key, (kind, check) in spec.items():
            if key not in table:
                continue
            value = table[key]
            why = check_type(value, kind)
            if why is None and check is not None:
                why = check(value)
            if why is not None:
                self.problems.append(f"{keypath}.{key}: {why}")
            elif kind == "number":
                out[key] = float(value)
            elif kind == "strings":
                out[key] = tuple(value)
            elif key.endswith(("_file", "_dir")):
                out[key] = self.path(value)
            else:
                out[key] = value
        return out

    def section(self, top: dict[str, Any], name: str,
                spec: dict[str, tuple[str, Check | None]]) -> dict[str, Any]:
        return self.values(self.table(top.get(name, {}), name, tuple(spec)), name, spec)

    def path(self, text: str) -> Path:
        return Path(os.path.normpath(self.base_dir / Path(text).expanduser()))


def load_config(path: Path) -> Config:
    """Read and validate a config file; ConfigError lists every problem with its key path."""
    path = Path(path)
    try:
        raw = fsutil.read_small_file(path, MAX_CONFIG_BYTES)
    except OSError as e:
        raise errors.ConfigError([f"cannot read ({e.strerror})"], str(path)) from e
    data, problem = parse_toml_text(raw)
    if data is None:
        raise errors.ConfigError([problem or "invalid TOML"], str(path))
    cfg = parse_config(data, str(path), base_dir=Path(os.path.abspath(path)).parent)
    return dataclasses.replace(cfg, source=Path(os.path.abspath(path)))


def parse_config(data: Mapping[str, Any], source: str, *, base_dir: Path | None = None) -> Config:
    """Validate parsed TOML; relative paths are taken from base_dir (default: the cwd)."""
    reader = _Reader(Path(os.path.abspath(base_dir or Path.cwd())))
    top = reader.table(dict(data), "", _TOP_KEYS)
    runway = RunwayConfig(**reader.section(top, "runway", _RUNWAY))
    daemon = DaemonConfig(**reader.section(top, "daemon", _DAEMON))
    store = StoreConfig(**reader.section(top, "store", _STORE))
    defaults = FolderSettings(**reader.section(top, "defaults", _SETTINGS))
    folder_list = top.get("folder", [])
    if not isinstance(folder_list, list):
        got = "[folder]" if isinstance(folder_list, dict) else describe(folder_list)
        reader.problems.append(f"folder: expected [[folder]] tables (an array of tables), "
                               f"got {got}")
        folder_list = []
    folders = [_parse_folder(reader, item, f"folder[{i}]", defaults, source)
               for i, item in enumerate(folder_list)]
    _check_overlaps(reader, folders)
    _check_output_dirs(reader, folders)
    _check_shares(reader, folders)
    if reader.problems:
        raise errors.ConfigError(reader.problems, source)
    return Config(runway, defaults, tuple(f for f in folders if f is not None), daemon, None,
                  store)


def _parse_folder(reader: _Reader, item: object, keypath: str, defaults: FolderSettings,
                  source: str) -> FolderConfig | None:
    table = reader.table(item, keypath, _FOLDER_KEYS)
    if not isinstance(item, dict):
        return None
    settings = dataclasses.replace(defaults, **reader.values(table, keypath, _SETTINGS))
    recursive = table.get("recursive", True)
    if (why := check_type(recursive, "boolean")) is not None:
        reader.problems.append(f"{keypath}.recursive: {why}")
    rule = None
    if "rule" in table:
        rule, problems = rules.parse_rule(table["rule"], source, f"{keypath}.rule")
        reader.problems += problems
    raw_path = table.get("path")
    if raw_path is None:
        reader.problems.append(f"{keypath}.path: required")
        return None
    if (why := check_type(raw_path, "string")) is not None or not raw_path.strip():
        reader.problems.append(f"{keypath}.path: {why or 'must not be empty'}")
        return None
    # Resolved, so the mount table (NFS or local?) and overlap checks see the real directory.
    path = reader.path(raw_path).resolve()
    if path.exists() and not path.is_dir():
        reader.problems.append(f"{keypath}.path: {path} exists but is not a directory")
    if rule is not None and rule.name is None:
        rule = dataclasses.replace(rule, name=path.name)
    share = table.get("share")
    if share is not None and (why := share_problem(share)) is not None:
        reader.problems.append(f"{keypath}.share: {why}")
        share = None
    return FolderConfig(path, recursive is True, settings, rule, share)


def _check_shares(reader: _Reader, folders: list[FolderConfig | None]) -> None:
    """Share names are unique, and none is inside another (see shares_problem)."""
    named: list[tuple[int, str]] = []
    for i, folder in enumerate(folders):
        if folder is None or folder.share is None:
            continue
        for j, other in named:
            if (why := shares_problem([other, folder.share])) is not None:
                reader.problems.append(f"folder[{i}].share: {why} (folder[{j}] names {other!r})")
        named.append((i, folder.share))


def _check_output_dirs(reader: _Reader, folders: list[FolderConfig | None]) -> None:
    watched = [(f.path, f.recursive) for f in folders if f is not None]
    for i, folder in enumerate(folders):
        if folder is None or folder.rule is None:
            continue
        why = output_dir_problem(folder.rule.output_path(folder.path), folder.path, watched)
        if why is not None:
            reader.problems.append(f"folder[{i}].rule.output_dir: {why}")


def _check_overlaps(reader: _Reader, folders: list[FolderConfig | None]) -> None:
    real: list[tuple[int, FolderConfig, Path]] = []
    for i, folder in enumerate(folders):
        if folder is None:
            continue
        try:
            resolved = folder.path.resolve()
        except (OSError, RuntimeError):
            resolved = folder.path
        for j, other, other_real in real:
            if resolved == other_real:
                reader.problems.append(f"folder[{i}].path: same folder as folder[{j}] "
                                       f"({other.path})")
            elif other.recursive and resolved.is_relative_to(other_real):
                reader.problems.append(f"folder[{i}].path: inside folder[{j}] which is recursive")
            elif folder.recursive and other_real.is_relative_to(resolved):
                reader.problems.append(f"folder[{j}].path: inside folder[{i}] which is recursive")
        real.append((i, folder, resolved))


def config_for_dirs(dirs: list[Path]) -> Config:
    """The config of `run --watch DIR ...` without a file: defaults, recursive, no rules."""
    return parse_config({"folder": [{"path": str(d)} for d in dirs]}, "--watch")
