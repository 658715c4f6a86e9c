"""Fixtures for the status page: a store in tmp_path, a FakeSource, a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import TOKEN, Site, start_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A read-only page (no token) over an empty store with one watched folder, tmp/hot."""
    s, server = start_site(tmp_path)
    yield s
    s.http.close()
    server.stop()
    s.store.close()


@pytest.fixture
def token_site(tmp_path: Path) -> Iterator[Site]:
    """The same page with retry allowed for TOKEN."""
    s, server = start_site(tmp_path, token=TOKEN)
    yield s
    s.http.close()
    server.stop()
    s.store.close()
