"""The outage run's own PostgreSQL server: stopped, it refuses connections; started again, it
answers on the same address with the data it had."""

from __future__ import annotations

import psycopg
import pytest
from own_postgres import own_postgres


def test_own_server_stops_and_comes_back_on_the_same_address_with_its_data() -> None:
    """A row written before a stop is read after the start, through the very same URL."""
    with own_postgres() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v TEXT)")
            conn.execute("INSERT INTO t VALUES ('kept')")
        server.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.url, connect_timeout=5).close()
        server.start()
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert [("kept",)] == conn.execute("SELECT v FROM t").fetchall()
        root = server.root
    assert not root.exists()
