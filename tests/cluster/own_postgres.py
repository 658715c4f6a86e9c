"""A PostgreSQL server of one test's own, on 127.0.0.1:<port>, that the test may stop and start
again on the same address (the session's server, tests/postgres_helpers.py, serves every other
test and must not go away). pgserver's wheel ships the binaries (initdb, pg_ctl, postgres);
PostgreSQL refuses to run as root, so under root it runs as pgserver's own system user, as the
session server does. The data lives outside pytest's basetemp (whose parents are 0700, closed to
that user) and is removed at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg


def _binaries() -> Path:
    # platformdirs (under pgserver, at import) warns when $XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH  # not re-exported by the package
    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnPostgres:
    """initdb'd at construction; start() / stop() as often as the test likes, same port."""

    DATABASE = "runwatchd"

    def __init__(self) -> None:
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="runwatchd-pgown-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            import pwd

            from pgserver.utils import ensure_user_exists  # the session server made it too

            ensure_user_exists("pgserver")
            entry = pwd.getpwnam("pgserver")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
        try:
            self._pg("initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8",
                     "-U", "postgres")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run([str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False,
                              **self._run_as)
        assert 0 == proc.returncode, f"{tool} failed: {proc.stdout}{proc.stderr}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """The store's database (created by the first start)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.DATABASE}"

    def start(self) -> None:
        """Start and wait until it accepts connections; the first start creates the database."""
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-l",
                 str(self.root / "server.log"), "-o",
                 f"-h 127.0.0.1 -p {self.port} -k {self.root}", "start")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (self.DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{self.DATABASE}"')

    def stop(self, mode: str = "fast") -> None:
        """Stop it (fast: every connection is ended at once, as when the server goes down)."""
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", mode, "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A started OwnPostgres, stopped and removed on the way out."""
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()
