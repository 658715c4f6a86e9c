"""The row and claim contracts through SharedPaths on PostgreSQL (test_shared_paths.py: SQLite)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import ClaimContract, RowContract, StoreFactory
from contract_leases import LeaseContract
from postgres_helpers import PostgresServer
from test_shared_paths import SharedFactory

from runwatchd.lifecycle.states import FileState
from runwatchd.store import FileRecord


@pytest.fixture
def store_factory(tmp_path: Path, postgres_server: PostgresServer,
                  postgres_db: str) -> Iterator[StoreFactory]:
    """Handles through SharedPaths on a fresh PostgreSQL store (a database of its own)."""
    (tmp_path / "state").mkdir()
    factory = SharedFactory(tmp_path / "state", postgres_server.url_of(postgres_db))
    yield factory
    factory.close()


class TestSharedPostgresRows(RowContract):
    """The row contract through SharedPaths on PostgreSQL."""


class TestSharedPostgresClaims(ClaimContract):
    """The at-most-once contract through SharedPaths on PostgreSQL."""


class TestSharedPostgresLeases(LeaseContract):
    """The lease contract through SharedPaths on PostgreSQL."""


@pytest.mark.parametrize("name", [
    "día/ショット.jpg",
    pytest.param(os.fsdecode(b"caf\xe9/\xff\xfe.jpg"), marks=pytest.mark.xfail(
        strict=True, raises=UnicodeEncodeError,
        reason="PostgresStore cannot hold a name that is not UTF-8, share or not")),
], ids=["unicode", "undecodable"])
def test_unicode_and_undecodable_keys_round_trip(store_factory: StoreFactory, name: str) -> None:
    """A non-ASCII (or not UTF-8) name under a share comes back as written, from its key."""
    here, raw = store_factory.open(), store_factory.raw()  # type: ignore[attr-defined]
    here.put(FileRecord(path=f"/hot/{name}", state=FileState.UPLOADED))
    assert [f"/hot/{name}"] == [r.path for r in here]
    assert [f"hot/{name}"] == [r.path for r in raw]
    got = here.get(f"/hot/{name}")
    assert (f"/hot/{name}", FileState.UPLOADED) == (got and got.path, got and got.state)
