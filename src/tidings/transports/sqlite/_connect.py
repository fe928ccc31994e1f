"""Opening the embedded broker's file: its URL, creating it, checking it is ours, and
bringing an older one to the current schema (see `_schema`).

A foreign SQLite file or a file from a newer release is refused with a clear error instead
of being written to; an older tidings file is migrated in place, in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..._exceptions import ConfigError
from .._routing import matches
from ._errors import is_busy, translate_error, translate_os_error
from ._schema import APPLICATION_ID, SCHEMA_VERSION, create_schema, migrate

__all__ = ["connect", "sqlite_path"]

_WAL_SIZE_LIMIT = 32 * 1024 * 1024


def sqlite_path(url: str) -> Path:
    """Return the database file of a SQLAlchemy-style SQLite URL, made absolute.

    ``sqlite:///relative.db`` is relative to the current directory,
    ``sqlite:////abs/path.db`` is absolute.

    Raises:
        ConfigError: the URL is not of that form (a host, no path, query parameters,
            ``:memory:``).
    """
    prefix = "sqlite://"
    if not url.startswith(prefix):
        raise ConfigError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    rest = url[len(prefix) :]
    if "?" in rest or "#" in rest:
        raise ConfigError(f"sqlite URL {url!r}: query parameters are not supported")
    if not rest.startswith("/"):
        raise ConfigError(
            f"sqlite URL {url!r} names a host; use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ConfigError(f"sqlite URL {url!r} has no file name")
    if path == ":memory:":
        raise ConfigError(
            "the embedded broker needs a file shared by processes; use memory:// for an "
            "in-process bus"
        )
    return Path(path).absolute()


def _sql_matches(pattern: str, routing_key: str) -> bool:
    return matches(pattern, routing_key)


def _create_file(path: Path, mode: int) -> None:
    """Create `path` empty with exactly `mode` (whatever the umask) unless it exists.

    SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files the mode of the database file,
    so this one choice covers all of them. An existing file is left alone.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def connect(
    path: Path, *, synchronous: str, busy_timeout: float, create: bool, file_mode: int = 0o600
) -> sqlite3.Connection:
    """Open a connection to the broker file, creating the schema when `create` and the file
    is new (with permission bits `file_mode`); check the file is ours and of a version we
    read.

    The returned connection is in autocommit mode (``isolation_level=None``): callers run
    explicit ``BEGIN IMMEDIATE`` / ``COMMIT``.

    A file of an older schema version is migrated in place (`_schema.migrate`).

    Raises:
        ConfigError: missing directory, foreign, corrupt, newer or unwritable file.
        BrokerUnavailable: the file stayed locked beyond `busy_timeout`, or the disk is full
            (said as such, naming the file).
    """
    if not path.parent.is_dir():
        raise ConfigError(f"cannot open {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"cannot open {path}: it is a directory")
    conn: sqlite3.Connection | None = None
    try:
        if create:
            _create_file(path, file_mode)
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = _check_or_create(conn, path, create, time.monotonic() + busy_timeout)
        if str(mode).lower() != "wal":
            raise ConfigError(f"cannot put {path} in WAL mode (journal mode is {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = OFF")
        # A WAL file is reused but never shrinks on its own; cap what a burst leaves behind.
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        conn.create_function("tidings_matches", 2, _sql_matches, deterministic=True)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise translate_error(exc, path, opening=True) from exc
        if isinstance(exc, OSError):
            raise translate_os_error(exc, path) from exc
        raise


def _check_or_create(conn: sqlite3.Connection, path: Path, create: bool, deadline: float) -> str:
    """Make sure the file holds our schema (creating it in a new file when `create`,
    migrating an older one), then put it in WAL mode; return the mode.

    Processes opening a new file at once race: an empty file is one another process is
    initialising, so it is waited for (or initialised here when `create`), never taken for
    a foreign file. Some lock conflicts of that race (a journal-mode change, WAL recovery)
    come back as "busy" without SQLite's busy handler waiting, so they are retried here
    until `deadline`.
    """
    while True:
        try:
            version = _version(conn, path)
            if version and version < SCHEMA_VERSION:
                migrate(conn)  # one transaction; a process that got there first did it
                continue
            if version or (create and _create_schema(conn, path)):
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        else:
            if time.monotonic() >= deadline:
                raise ConfigError(f"{path} is not a tidings database (it stayed empty)")
        time.sleep(0.005)


def _create_schema(conn: sqlite3.Connection, path: Path) -> bool:
    """Create the schema in an empty file under the write lock; True once the file is ours."""
    # auto_vacuum must be chosen before the first table exists.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have created it between our check and our lock.
        if not _version(conn, path):
            create_schema(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def _version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a tidings file we can read (maybe after migrating it), 0 for an
    empty file; raise for anything else."""
    # One statement reads one snapshot: separate reads could see the header before and the
    # tables after another process's schema commit, and take the file for a foreign one.
    app_id, version, tables = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id),"
        " (SELECT user_version FROM pragma_user_version),"
        " (SELECT count(*) FROM sqlite_master)"
    ).fetchone()
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{path} was written by a newer tidings (schema version {version}; "
                f"this release reads version {SCHEMA_VERSION})"
            )
        if version < 1:
            raise ConfigError(f"{path} is not a tidings database (no schema version)")
        return int(version)
    if app_id != 0 or tables:
        raise ConfigError(f"{path} is not a tidings database (it holds other data)")
    return 0
