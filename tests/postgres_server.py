"""A private PostgreSQL server for integration tests, on a free port, started once per session.

It runs from Debian's binaries (``/usr/lib/postgresql/<version>/bin``) with its own data
directory in a temporary folder, listening on 127.0.0.1 and a Unix socket in that folder, with
``fsync=off`` (the tests need no durability across a machine crash). PostgreSQL refuses to run
as root, so under root (as CI runs) ``initdb`` and ``pg_ctl`` run as the ``postgres`` user,
in a folder it owns. A missing server fails the tests (install it with
``scripts/install-servers.sh``), under CI and outside it alike; it is never a skip.

Each test gets a database of its own (`PostgresServer.create_database`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port

__all__ = ["PostgresServer", "postgres_server"]

START_TIMEOUT = 60


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: the outbox tests start a private server; run "
            "`bash scripts/install-servers.sh` (apt-get install postgresql)",
            pytrace=False,
        )
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    """One private PostgreSQL cluster (user ``tidings``, trust authentication)."""

    base: Path
    port: int = field(default_factory=free_port)
    user: str = "tidings"
    _as: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        """The async SQLAlchemy URL of `database` on this server."""
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: Sequence[str]) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                f"{self._log()}"
            )

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.base / "server.log").read_text(errors="replace")[-4000:]
        return ""

    def start(self) -> None:
        bin_dir = _bin_dir()
        if os.geteuid() == 0:
            # PostgreSQL will not run as root: run it as `postgres`, in a folder it owns.
            owner = pwd.getpwnam("postgres")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.base} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.base / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT),
                "start",
            ]
        )

    def stop(self) -> None:
        if not self.data.exists():
            return
        with contextlib.suppress(Exception):
            self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])

    async def create_database(self) -> str:
        """A new, empty database; return its async SQLAlchemy URL."""
        import asyncpg

        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user=self.user, database="postgres"
        )
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL server."""
    base = Path(tempfile.mkdtemp(prefix="tidings-postgres-"))
    server = PostgresServer(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
