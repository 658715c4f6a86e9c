"""The status page's token (`[daemon] web_token_file`): what lets the page retry files.

Read once when the page starts. The file holds one line; it must not be empty. A token that
anyone on the machine can read protects nothing, so a world-readable file is reported (but still
used: refusing would only push the admin towards turning the page's actions off altogether).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from runwatchd import errors

log = logging.getLogger(__name__)

KEY = "daemon.web_token_file"
# Shorter tokens can be guessed over a LAN at the rate a small HTTP server answers.
MIN_LENGTH = 16


def read_web_token(path: Path) -> str:
    """The token in `path`, stripped; ConfigError if it cannot be read, is empty, is too short
    or spans several lines. Logs a warning when the file is readable by everyone."""
    token, warnings = inspect_web_token(path)
    for warning in warnings:
        log.warning("%s", warning)
    return token


def inspect_web_token(path: Path) -> tuple[str, list[str]]:
    """(the token, warnings about its file); ConfigError when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            text = fh.read(4096)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise errors.ConfigError([f"{KEY}: cannot read {path} ({reason})"]) from None
    token = text.strip()
    if not token:
        raise errors.ConfigError([f"{KEY}: {path} is empty"])
    if any(c.isspace() or not c.isprintable() for c in token):
        raise errors.ConfigError([(f"{KEY}: {path} holds whitespace or control characters "
                                   "(more than one line?)")])
    if len(token) < MIN_LENGTH:
        raise errors.ConfigError([(f"{KEY}: the token in {path} is shorter than {MIN_LENGTH} "
                                   "characters (make one with: openssl rand -hex 24)")])
    warnings = []
    if mode & stat.S_IROTH:
        warnings.append(f"{KEY}: {path} is readable by every user of this machine; chmod 600 it "
                        "(or 640 with the service's group)")
    return token, warnings
