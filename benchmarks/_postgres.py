"""A private PostgreSQL for the benchmarks: the tests' server (``tests/postgres_server.py``:
Debian's binaries, a temporary data directory, a free port, run as ``postgres`` under root),
restarted durable. The tests run it with ``fsync=off``; numbers measured that way would flatter
every commit, so here it runs with PostgreSQL's defaults (``fsync=on``,
``synchronous_commit=on``, ``full_page_writes=on``)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

__all__ = ["durable_postgres"]


@contextlib.contextmanager
def durable_postgres() -> Iterator[tuple[PostgresServer, str]]:
    """(the server, its version) for the block; its `create_database` makes a database."""
    try:
        from tests.postgres_server import PostgresServer, _bin_dir
    except ImportError as exc:  # pragma: no cover - run from a checkout
        raise SystemExit(f"the outbox benchmark needs the tests' helpers ({exc})") from exc
    base = Path(tempfile.mkdtemp(prefix="tidings-bench-postgres-"))
    server = PostgresServer(base)
    try:
        try:
            server.start()
        except BaseException as exc:  # pytest.fail outside pytest: PostgreSQL is missing
            raise SystemExit(f"cannot start PostgreSQL: {exc}") from None
        bin_dir = _bin_dir()
        options = (
            f"-p {server.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={base} -c max_connections=200"
        )
        server._run(
            [
                str(bin_dir / "pg_ctl"),
                *("-D", str(server.data), "-l", str(base / "server.log")),
                *("-o", options, "-w", "-m", "fast", "restart"),
            ]
        )
        yield server, bin_dir.parent.name
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
