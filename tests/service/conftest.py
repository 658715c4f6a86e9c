"""Fixtures for the service tests: the process's logging put back after each test (the CLI and
setup_logging configure it for the whole process)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level, and the noisy libraries' levels, as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("httpx", "httpcore", "watchdog", "watchdog.observers.inotify_c")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for h in root.handlers:
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
