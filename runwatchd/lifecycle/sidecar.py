"""The `<file>.runway.json` sidecar: build, write atomically, read, validate, match and expiry.

Shape (design.md; keys may be added, never removed):
    {"schema": 1, "runway_uri": "runway://...", "uploaded_at": "2026-11-24T10:00:00Z",
     "expires_at": "2026-11-25T10:00:00Z",
     "file": {"name": "shot.jpg", "size": 123456, "mtime_ns": 0, "sha256": "..."},
     "task": {"id", "endpoint", "rule", "status", "outputs", "failure", "failure_code"}}  # optional
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from runwatchd import fsutil

log = logging.getLogger(__name__)

SUFFIX = ".runway.json"
SCHEMA = 1
URI_LIFETIME = timedelta(hours=24)
# A URI this close to its expiry is not sent: the task may sit PENDING/THROTTLED for a while.
URI_MARGIN = timedelta(hours=1)
MAX_SIDECAR_BYTES = 1024 * 1024

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TASK_DEFAULTS: dict[str, Any] = {
    "id": None,
    "endpoint": None,
    "rule": None,
    "status": None,
    "outputs": [],
    "failure": None,
    "failure_code": None,
}


def sidecar_path(media: Path) -> Path:
    """shot.jpg -> shot.jpg.runway.json, in the same directory."""
    return media.with_name(media.name + SUFFIX)


def name_problem(media: Path) -> str | None:
    """Why `media` can have no sidecar beside it (its name plus ".runway.json" is longer than the
    file system allows), or None. Checked before the upload: uploading a file whose sidecar can
    never be written would upload it again at every look."""
    try:
        limit = os.pathconf(media.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255  # NAME_MAX on Linux file systems
    size = len(os.fsencode(media.name + SUFFIX))
    if size <= limit:
        return None
    return (f"{media.name}: the name is too long for its sidecar ({size} bytes with "
            f"'{SUFFIX}', the file system allows {limit}); rename it to at most "
            f"{limit - len(SUFFIX)} bytes")


def format_time(moment: datetime) -> str:
    """An aware datetime as "2026-11-24T10:00:00Z" (UTC, whole seconds)."""
    if moment.tzinfo is None:
        raise ValueError("sidecar times must be timezone-aware")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Parse a sidecar time; naive values are taken as UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_sidecar(
    media: Path,
    *,
    runway_uri: str,
    uploaded_at: datetime,
    size: int,
    mtime_ns: int,
    sha256: str,
    task: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar for `media`; expires_at is uploaded_at (cut to the second) plus 24 h."""
    if uploaded_at.tzinfo is None:
        raise ValueError("sidecar times must be timezone-aware")
    uploaded = uploaded_at.astimezone(UTC).replace(microsecond=0)
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "runway_uri": runway_uri,
        "uploaded_at": format_time(uploaded),
        "expires_at": format_time(uploaded + URI_LIFETIME),
        "file": {"name": media.name, "size": size, "mtime_ns": mtime_ns, "sha256": sha256},
    }
    if task is not None:
        data["task"] = {**_TASK_DEFAULTS, **task}
    for key, value in (extra or {}).items():
        if key in data:
            raise ValueError(f"extra sidecar key {key!r} would overwrite a standard key")
        data[key] = value
    return data


def write_sidecar(media: Path, data: dict[str, Any]) -> Path:
    """Write `data` as `media`'s sidecar atomically (UTF-8, indent 2, trailing newline)."""
    problems = validate_sidecar(data)
    if problems:
        raise ValueError(f"refusing to write an invalid sidecar for {media.name}: {problems[0]}")
    path = sidecar_path(media)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8 on disk: \udcXX escapes read back exact
        raw = (json.dumps(data, indent=2) + "\n").encode("ascii")
    fsutil.atomic_write_bytes(path, raw)
    return path


def read_sidecar(media: Path) -> dict[str, Any] | None:
    """`media`'s sidecar, or None when absent. A corrupt or invalid sidecar also gives None,
    with a warning: it means "process the file again"."""
    data, problem = inspect_sidecar(media)
    if problem is not None:
        log.warning("%s", problem)
    return data


def inspect_sidecar(media: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(sidecar, None), (None, None) when absent, or (None, why it cannot be used): read_sidecar
    without the warning, for a caller that warns only when the answer matters."""
    path = sidecar_path(media)
    try:
        # Never blocks (a FIFO in its place is refused at once) and never reads past the cap.
        raw = fsutil.read_small_file(path, MAX_SIDECAR_BYTES)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, (f"{path}: cannot read sidecar ({e.strerror or e}); the file will be "
                      "processed again")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, (f"{path}: sidecar is not valid JSON ({why}); the file will be processed "
                      "again")
    problems = validate_sidecar(data)
    if problems:
        return None, (f"{path}: invalid sidecar ({'; '.join(problems)}); the file will be "
                      "processed again")
    assert isinstance(data, dict)
    return data, None


def validate_sidecar(data: object) -> list[str]:
    """Every problem with `data` as a sidecar, [] if it is valid."""
    if not isinstance(data, dict):
        return [f"expected a JSON object, got {type(data).__name__}"]
    problems: list[str] = []
    schema = data.get("schema")
    if not _is_int(schema) or schema < 1:
        problems.append(f"schema: expected an integer >= 1, got {schema!r}")
    uri = data.get("runway_uri")
    if not isinstance(uri, str) or not uri:
        problems.append(f"runway_uri: expected a non-empty string, got {uri!r}")
    for key in ("uploaded_at", "expires_at"):
        problems.extend(_time_problems(key, data.get(key)))
    problems.extend(_file_problems(data.get("file")))
    if "task" in data:
        problems.extend(_task_problems(data["task"]))
    return problems


class Versioned(Protocol):
    """What tells one version of a file from another: os.stat_result, or a copy of its parts."""

    @property
    def st_size(self) -> int: ...

    @property
    def st_mtime_ns(self) -> int: ...


def sidecar_matches(data: Mapping[str, Any], st: Versioned, name: str) -> bool:
    """True if the sidecar describes this file: same name, size and mtime_ns."""
    info = data.get("file")
    if not isinstance(info, dict):
        return False
    return (
        info.get("name") == name
        and info.get("size") == st.st_size
        and info.get("mtime_ns") == st.st_mtime_ns
    )


def uri_stale(uploaded_at: float, now: float) -> bool:
    """True when a URI uploaded at `uploaded_at` (epoch seconds) is too near its expiry to be
    sent at `now`: the file is uploaded again first."""
    return uploaded_at + (URI_LIFETIME - URI_MARGIN).total_seconds() <= now


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _time_problems(key: str, value: object) -> list[str]:
    if not isinstance(value, str):
        return [f"{key}: expected a time like 2026-11-24T10:00:00Z, got {value!r}"]
    try:
        parse_time(value)
    except ValueError:
        return [f"{key}: expected a time like 2026-11-24T10:00:00Z, got {value!r}"]
    return []


def _file_problems(info: object) -> list[str]:
    if not isinstance(info, dict):
        return [f"file: expected an object, got {info!r}"]
    problems = []
    if not isinstance(info.get("name"), str) or not info.get("name"):
        problems.append(f"file.name: expected a non-empty string, got {info.get('name')!r}")
    for key in ("size", "mtime_ns"):
        value = info.get(key)
        if not _is_int(value) or value < 0:
            problems.append(f"file.{key}: expected an integer >= 0, got {info.get(key)!r}")
    sha = info.get("sha256")
    if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha):
        problems.append(f"file.sha256: expected 64 lowercase hex digits, got {sha!r}")
    return problems


def _task_problems(task: object) -> list[str]:
    if not isinstance(task, dict):
        return [f"task: expected an object, got {task!r}"]
    problems = []
    for key in ("id", "endpoint", "rule", "status", "failure", "failure_code"):
        value = task.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"task.{key}: expected a string or null, got {value!r}")
    outputs = task.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        problems.append(f"task.outputs: expected a list of strings, got {outputs!r}")
    return problems
