"""Logging set-up: plain lines on stderr, shaped for whoever reads them.

- under systemd (``$JOURNAL_STREAM`` names our stderr): no timestamp (journald adds one) and an
  sd-daemon ``<N>`` priority prefix on every line, so ``journalctl -p warning`` works;
- on a terminal: timestamps, and the level in colour unless ``$NO_COLOR`` is set;
- anywhere else (a pipe, a file): timestamped plain lines;
- ``fmt="json"``: one JSON object per line for log shippers, with ``extra=`` fields kept, and
  the fields a shipper filters on where they apply: ``node`` (the host) on every line, ``path``,
  ``uri``, ``bytes``, ``task_id``, ``event``. They come from ``extra=``, else from the thread's
  log_context() (the file a worker is on), else from the arguments of a known message
  (EVENTS: the lines of the file's way, whose arguments are known); text lines are unchanged.

The CLI calls :func:`setup_logging` once; calling it again replaces our handler, never stacks one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from runwatchd.watch import OVERFLOW_LOGGER

__all__ = ["EVENTS", "SecretFilter", "add_log_context", "install_secret_filter", "log_context",
           "setup_logging"]

REDACTED = "[REDACTED]"

# sd-daemon(3) priorities, the syslog levels.
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
_COLOURS = {
    logging.DEBUG: "\033[2m",
    logging.INFO: "\033[32m",
    logging.WARNING: "\033[33m",
    logging.ERROR: "\033[31m",
    logging.CRITICAL: "\033[1;31m",
}
_RESET = "\033[0m"
_DATEFMT = "%Y-%m-%d %H:%M:%S"

# Libraries that log every request or event at INFO/DEBUG; months of running want only their
# warnings.
_NOISY = ("httpx", "httpcore", "watchdog")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}

_secrets: list[str] = []

# Messages of a file's way -> (event, the field each argument fills; None: not a field). A test
# checks every one is still in the package's source, so rewording a line cannot silently drop
# its fields.
EVENTS: dict[str, tuple[str, tuple[str | None, ...]]] = {
    "detected %s": ("detected", ("path",)),
    "settled %s": ("settled", ("path",)),
    "retrying %s": ("retrying", ("path",)),
    "uploading %s (%s bytes)": ("upload_started", ("path", "bytes")),
    "uploaded %s -> %s": ("uploaded", ("path", "uri")),
    "%s changed while uploading; waiting for it to settle again (%s)": ("upload_restarted",
                                                                        ("path", None)),
    "%s: %s (attempt %d; next try in %.0f s)": ("upload_failed", ("path",)),
    "skipped %s": ("skipped", (None,)),
    "submitted %s task %s for %s": ("task_submitted", (None, "task_id", "path")),
    "task %s for %s is %s": ("task_status", ("task_id",)),
    "task %s for %s SUCCEEDED: %s": ("task_succeeded", ("task_id",)),
    "polling task %s of %s failed: %s": ("task_poll_failed", ("task_id", "path")),
    "no longer following task %s: %s moved on": ("task_dropped", ("task_id", "path")),
    "downloading outputs of task %s for %s failed (%d of %d): %s": ("download_failed",
                                                                   ("task_id",)),
}

_context = threading.local()


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """`fields` join every JSON line this thread logs inside the block (a worker: the file it
    is on), unless a line names them itself."""
    outer: dict[str, object] = getattr(_context, "fields", {})
    _context.fields = {**outer, **fields}
    try:
        yield
    finally:
        _context.fields = outer


def add_log_context(**fields: object) -> None:
    """Add `fields` to the innermost open log_context of this thread (none open: nothing)."""
    current: dict[str, object] | None = getattr(_context, "fields", None)
    if current:
        current.update(fields)


class _FieldsFilter(logging.Filter):
    """Puts the structured fields on a record (JSON only) before the secret filters see it."""

    def __init__(self) -> None:
        super().__init__()
        self.node = socket.gethostname()

    def filter(self, record: logging.LogRecord) -> bool:
        found: dict[str, object] = {"node": self.node, **getattr(_context, "fields", {})}
        known = EVENTS.get(record.msg) if isinstance(record.msg, str) else None
        if known is not None:
            found["event"] = known[0]
            args = record.args if isinstance(record.args, tuple) else ()
            for name, value in zip(known[1], args, strict=False):
                if name is not None:
                    found[name] = value if isinstance(value, int) else str(value)
        for key, value in found.items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


def _priority(levelno: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _SYSLOG_PRIORITY[threshold]
    return _SYSLOG_PRIORITY[logging.DEBUG]


def _one_line(message: str) -> str:
    """A file name may hold a newline: escape it, so one record stays one line and a crafted
    name cannot forge a log entry (tracebacks are added after this and keep their lines)."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


class _TextFormatter(logging.Formatter):
    """``2026-11-25 12:00:00 INFO  runwatchd.daemon.core: message``, optionally coloured."""

    def __init__(self, colour: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", _DATEFMT)
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        level = f"{record.levelname:<5}"
        if self.colour:
            level = f"{_COLOURS.get(record.levelno, '')}{level}{_RESET}"
        return f"{record.asctime} {level} {record.name}: {_one_line(record.message)}"


class _JournalFormatter(logging.Formatter):
    """``<6>INFO runwatchd.daemon.core: message``: journald stores the time and parses the prefix."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return f"{record.levelname} {record.name}: {_one_line(record.message)}"

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_priority(record.levelno)}>"
        # journald makes one entry per line and reads the prefix on each, so a traceback's
        # lines keep the record's priority instead of falling back to the default.
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


class _JsonFormatter(logging.Formatter):
    """One object per line: ts (UTC, ms), level, logger, msg, ``extra=`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler as ours, so a second setup_logging replaces it."""


def _under_journald(stream: TextIO, env: Mapping[str, str]) -> bool:
    value = env.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        # Not "dev:ino", or a stream without a descriptor (StringIO): not the journal.
        return False
    # Compared with our own stderr: a child whose stderr was redirected inherits JOURNAL_STREAM.
    return (st.st_dev, st.st_ino) == (dev, ino)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _wants_colour(stream: TextIO, env: Mapping[str, str]) -> bool:
    return _is_tty(stream) and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING or ERROR)")
    return value


def setup_logging(
    level: str | int = "INFO",
    fmt: str = "text",
    stream: TextIO | None = None,
    env: Mapping[str, str] = os.environ,
) -> None:
    """Configure the root logger for the daemon and the CLI; safe to call again (it replaces)."""
    levelno = _level(level)
    if stream is None:
        stream = sys.stderr
    formatter: logging.Formatter
    if fmt == "json":
        formatter = _JsonFormatter()
    elif fmt == "text":
        if _under_journald(stream, env):
            formatter = _JournalFormatter()
        else:
            formatter = _TextFormatter(colour=_wants_colour(stream, env))
    else:
        raise ValueError(f"unknown log format {fmt!r} (use 'text' or 'json')")

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    handler.setLevel(levelno)
    if fmt == "json":
        handler.addFilter(_FieldsFilter())  # before the secret filters: they redact its fields
    for secret in _secrets:
        handler.addFilter(SecretFilter(secret))
    root.addHandler(handler)
    root.setLevel(levelno)

    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, levelno))
    # psycopg's pool warns at every failed reconnect while the store is down (dozens a minute);
    # the daemon says it once (daemon/outage.py), so only the pool's errors get through.
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, levelno))
    # watch/observers.py hooks watchdog's "Inotify queue overflowed" WARNING to trigger a rescan
    # (watchdog 7.1 only logs it), so its WARNING records must be created whatever the level.
    logging.getLogger(OVERFLOW_LOGGER).setLevel(logging.WARNING)


class SecretFilter(logging.Filter):
    """Replaces the secret in a record's message, args, exception text and extras.

    Defence in depth: nothing should log the secret, but an exception message that quotes a
    request header must not leak it either. Attach to handlers (a logger's own filters do not
    see records propagated from child loggers).
    """

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        secret = self.secret
        if not secret:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            message = None
        if message is not None and secret in message:
            record.msg = message.replace(secret, REDACTED)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and secret in record.exc_text:
            record.exc_text = record.exc_text.replace(secret, REDACTED)
        if record.stack_info and secret in record.stack_info:
            record.stack_info = record.stack_info.replace(secret, REDACTED)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS and isinstance(value, str) and secret in value:
                setattr(record, key, value.replace(secret, REDACTED))
        return True


def install_secret_filter(secret: str) -> None:
    """Redact ``secret`` on every root handler now, and on the handler of any later setup."""
    if not secret:
        return
    if secret not in _secrets:
        _secrets.append(secret)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretFilter) and f.secret == secret for f in handler.filters):
            handler.addFilter(SecretFilter(secret))
