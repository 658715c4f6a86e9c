"""A throwaway PostgreSQL server for the tests, one per test session, started on first use.

$RUNWATCHD_TEST_POSTGRES (a URL whose user may CREATE DATABASE) names an existing server;
otherwise the `pgserver` wheel (in the test extra: it ships the PostgreSQL binaries) starts one
in a temporary directory and stops it at the end. Each test gets a database of its own (advisory
locks and tables are per database), dropped after the test. The fixtures are registered by
tests/conftest.py; tests import PostgresServer from here (never from a conftest: every test
folder's conftest module is named `conftest`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

TEST_POSTGRES_ENV = "RUNWATCHD_TEST_POSTGRES"
_numbers = itertools.count()


class PostgresServer:
    """A server the tests may create databases on, through its admin URL."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url_of(self, database: str, password: str | None = None) -> str:
        """The admin URL pointed at `database` (with `password` in it, when given)."""
        parts = urlsplit(self.admin_url)
        netloc = parts.netloc
        if password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0] or 'postgres'}:{password}@{host}"
        return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        name = f"rwtest_{os.getpid()}_{next(_numbers)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """$RUNWATCHD_TEST_POSTGRES's server, else one pgserver starts (stopped and removed at the
    end). Its data lives outside pytest's basetemp: another pytest session of the same user
    prunes old basetemp directories, a running server's included."""
    given = os.environ.get(TEST_POSTGRES_ENV, "").strip()
    if given:
        yield PostgresServer(given)
        return
    # platformdirs (under pgserver, at import) warns when $XDG_RUNTIME_DIR is unset, as under
    # root or in a container.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = Path(tempfile.mkdtemp(prefix="runwatchd-pgdata-"))
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield PostgresServer(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """The name of a fresh, empty database, dropped after the test."""
    name = postgres_server.create_database()
    yield name
    postgres_server.drop_database(name)
