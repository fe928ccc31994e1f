"""The embedded broker's file: URL parsing, schema, opening and error translation.

The file is recognised by ``PRAGMA application_id`` and versioned by ``PRAGMA user_version``,
so a foreign SQLite file or a file from a newer release is refused with a clear error instead
of being written to.

Tables::

    state        one row: bindings_version and consumers_version, bumped by every change of
                 the topology or of the consumer registrations, so each process refreshes its
                 caches inside the transaction that needs them.
    groups       gid, name, ordered, concurrency.
    bindings     (gid, pattern): a publish fans out to every group with a matching pattern.
    log          seq, id, type, key, body, content_type, headers (JSON or NULL), published_at,
                 target (group of a group-only message), retained (0 for DLQ-replay copies):
                 the retained log and the message store; deliveries point into it.
    deliveries   id (insertion order, the ordering position of a key), gid, log_seq,
                 key (only for ordered groups), attempt, available_at, lease_owner,
                 first_failed_at, replayed. A claimed row has lease_owner set and
                 available_at = its lease expiry, so a crashed worker's rows become ready
                 again on their own.
    dead_letters the dead-letter queues.
    dedupe       (grp, event_id, expires_at): markers of the dedupe store.
    consumers    live consumer registrations, with their wake-up port.
    counters     (gid, bucket): publish and ack counts per 10-second bucket.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..._exceptions import BrokerUnavailable, ConfigError, TidingsError
from .._routing import matches

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "LockTimeout",
    "connect",
    "is_busy",
    "is_environmental",
    "sqlite_path",
    "translate_error",
]

APPLICATION_ID = 0x54494447  # "TIDG"
SCHEMA_VERSION = 1
_WAL_SIZE_LIMIT = 32 * 1024 * 1024

_SCHEMA = (
    """CREATE TABLE state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        bindings_version INTEGER NOT NULL,
        consumers_version INTEGER NOT NULL
    )""",
    "INSERT INTO state (id, bindings_version, consumers_version) VALUES (1, 0, 0)",
    """CREATE TABLE groups (
        gid INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ordered INTEGER NOT NULL DEFAULT 0,
        concurrency INTEGER NOT NULL DEFAULT 16,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE bindings (
        gid INTEGER NOT NULL,
        pattern TEXT NOT NULL,
        PRIMARY KEY (gid, pattern)
    ) WITHOUT ROWID""",
    """CREATE TABLE log (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        key TEXT,
        body BLOB NOT NULL,
        content_type TEXT,
        headers TEXT,
        published_at REAL NOT NULL,
        target TEXT,
        retained INTEGER NOT NULL DEFAULT 1
    )""",
    "CREATE INDEX log_time ON log (published_at)",
    "CREATE INDEX log_unretained ON log (seq) WHERE retained = 0",
    """CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        gid INTEGER NOT NULL,
        log_seq INTEGER NOT NULL,
        key TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        available_at REAL NOT NULL,
        lease_owner TEXT,
        first_failed_at REAL,
        replayed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX deliveries_due ON deliveries (gid, available_at)",
    "CREATE INDEX deliveries_key ON deliveries (gid, key) WHERE key IS NOT NULL",
    """CREATE TABLE dead_letters (
        rowid INTEGER PRIMARY KEY,
        entry_id TEXT NOT NULL UNIQUE,
        gid INTEGER NOT NULL,
        event_id TEXT,
        type TEXT NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT,
        headers TEXT,
        key TEXT,
        reason TEXT NOT NULL,
        exception_type TEXT,
        message TEXT NOT NULL,
        traceback TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_failed_at REAL NOT NULL,
        last_failed_at REAL NOT NULL
    )""",
    "CREATE INDEX dead_letters_group ON dead_letters (gid)",
    """CREATE TABLE dedupe (
        grp TEXT NOT NULL,
        event_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (grp, event_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX dedupe_expiry ON dedupe (expires_at)",
    """CREATE TABLE consumers (
        id TEXT PRIMARY KEY,
        gid INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        wake_port INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE counters (
        gid INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        published INTEGER NOT NULL DEFAULT 0,
        acked INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (gid, bucket)
    ) WITHOUT ROWID""",
)

# Primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT = 5, 6, 7, 8, 10, 11
_FULL, _CANTOPEN, _PERM, _AUTH, _NOTADB = 13, 14, 3, 23, 26
_ENVIRONMENTAL = {_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN}
_ENVIRONMENTAL |= {_PERM, _AUTH, _NOTADB}


class LockTimeout(Exception):
    """Another process held the write lock for longer than the busy timeout."""


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


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: BaseException) -> bool:
    """True when `exc` says another connection holds a lock we need."""
    return isinstance(exc, sqlite3.Error) and _code(exc) in (_BUSY, _LOCKED)


def is_environmental(exc: BaseException) -> bool:
    """True when `exc` comes from the file or the machine, not from one operation's data.

    Such an error fails a whole write batch at once; retrying it op by op would not help.
    """
    if isinstance(exc, LockTimeout | BrokerUnavailable):
        return True
    return isinstance(exc, sqlite3.Error) and _code(exc) in _ENVIRONMENTAL


def translate_error(exc: BaseException, path: Path, *, opening: bool = False) -> TidingsError:
    """Turn a driver error into a one-line tidings error that names the file."""
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, LockTimeout):
        return BrokerUnavailable(f"database {path} is locked by another process ({exc})")
    if not isinstance(exc, sqlite3.Error):
        return BrokerUnavailable(f"database {path}: {type(exc).__name__}: {exc}")
    code = _code(exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if code == _NOTADB:
        return ConfigError(f"{path} is not a SQLite database ({text})")
    if code == _CORRUPT:
        cls = ConfigError if opening else BrokerUnavailable
        return cls(f"database {path} is corrupt ({text})")
    if code in (_BUSY, _LOCKED):
        return BrokerUnavailable(f"database {path} is locked by another process ({text})")
    if code == _FULL:
        return BrokerUnavailable(f"disk full writing {path} ({text})")
    if code in (_READONLY, _PERM, _AUTH, _CANTOPEN):
        return ConfigError(f"cannot write to {path} ({text})")
    if code == _IOERR:
        return BrokerUnavailable(f"I/O error on {path} ({text})")
    return BrokerUnavailable(f"database {path}: {text}")


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

    Raises:
        ConfigError: missing directory, foreign, corrupt, newer or unwritable file.
        BrokerUnavailable: the file stayed locked beyond `busy_timeout`.
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
            raise ConfigError(f"cannot create {path} ({exc.strerror})") from exc
        raise


def _check_or_create(conn: sqlite3.Connection, path: Path, create: bool, deadline: float) -> str:
    """Make sure the file holds our schema, then put it in WAL mode; return the mode.

    Processes opening a new file at once race: an empty file is one another process is
    initialising, so it is waited for (or initialised here when `create`), never taken for
    a foreign file. Some lock conflicts of that race (a journal-mode change, WAL recovery)
    come back as "busy" without SQLite's busy handler waiting, so they are retried here
    until `deadline`.
    """
    while True:
        try:
            if _is_ours(conn, path) or (create and _create_schema(conn, path)):
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
        if not _is_ours(conn, path):
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def _is_ours(conn: sqlite3.Connection, path: Path) -> bool:
    """True for a tidings file of our version, False for an empty one; raise otherwise."""
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
        return True
    if app_id != 0 or tables:
        raise ConfigError(f"{path} is not a tidings database (it holds other data)")
    return False
