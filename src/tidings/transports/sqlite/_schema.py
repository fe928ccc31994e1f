"""The embedded broker's schema: its tables, its version, and the migrations to it.

The file is recognised by ``PRAGMA application_id`` and versioned by ``PRAGMA user_version``
(see `_connect` for how a file is opened and checked). Every bus on one file has its own
namespace, its name: groups, and through them bindings, deliveries, dead letters,
registrations and counters, belong to one namespace; retained events and dedupe markers carry
theirs.

Tables::

    state        one row: bindings_version and consumers_version, bumped by every change of
                 the topology or of the consumer registrations, so each process refreshes its
                 caches inside the transaction that needs them.
    groups       gid, ns, name (unique per ns), ordered, concurrency, max_ready (None:
                 unbounded).
    bindings     (gid, pattern): a publish fans out to every group with a matching pattern.
    log          seq, id, type, key, body, content_type, headers (JSON or NULL), published_at,
                 target (group of a group-only message), retained (0 for DLQ-replay copies),
                 ns: the retained log and the message store; deliveries point into it. An
                 unroutable publish is never written.
    deliveries   id (insertion order, the ordering position of a key), gid, log_seq,
                 key (only for ordered groups), attempt, available_at, lease_owner,
                 first_failed_at, replayed. A claimed row has lease_owner set and
                 available_at = its lease expiry, so a crashed worker's rows become ready
                 again on their own.
    dead_letters the dead-letter queues.
    dedupe       (ns, grp, event_id, expires_at, done, owner): "done" markers (done = 1) and
                 live claims (done = 0, held by owner, a transport) of the dedupe store; a
                 row whose expires_at has passed counts as absent.
    consumers    live consumer registrations, with their wake-up port.
    counters     (gid, bucket): publish and ack counts per 10-second bucket.
    inboxes      address, ns, pid, host, wake_port, created_at, expires_at: the reply inboxes
                 of live bus instances (`_replies`); the owner pushes expires_at one lease
                 ahead every third of a lease, so an inbox whose owner died expires.
    replies      seq (arrival order), inbox, id, type, key, body, content_type, headers,
                 sent_at: replies waiting to be taken by their inbox's owner.

``log.reply_to`` is the inbox address of a request (NULL for everything else).

Version history: 1, the first release; 2, namespaces (existing rows go to ``tidings``, the
default bus name), ``groups.max_ready``, and dedupe claims; 3, request/reply (``log.reply_to``,
``inboxes``, ``replies``).
"""

from __future__ import annotations

import sqlite3

__all__ = ["APPLICATION_ID", "DEFAULT_NAMESPACE", "SCHEMA_VERSION", "create_schema", "migrate"]

APPLICATION_ID = 0x54494447  # "TIDG"
SCHEMA_VERSION = 3
DEFAULT_NAMESPACE = "tidings"
"""The namespace of everything a version-1 file held: the default bus name."""

# Tables rebuilt by a migration are written with a {name} so the migration can build the
# new table beside the old one from the same text.
_GROUPS = """CREATE TABLE {name} (
        gid INTEGER PRIMARY KEY,
        ns TEXT NOT NULL DEFAULT 'tidings',
        name TEXT NOT NULL,
        ordered INTEGER NOT NULL DEFAULT 0,
        concurrency INTEGER NOT NULL DEFAULT 16,
        max_ready INTEGER,
        created_at REAL NOT NULL,
        UNIQUE (ns, name)
    )"""
_DEDUPE = """CREATE TABLE {name} (
        ns TEXT NOT NULL DEFAULT 'tidings',
        grp TEXT NOT NULL,
        event_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 1,
        owner TEXT,
        PRIMARY KEY (ns, grp, event_id)
    ) WITHOUT ROWID"""
_DEDUPE_EXPIRY = "CREATE INDEX dedupe_expiry ON dedupe (expires_at)"
_REQUEST_REPLY = (
    """CREATE TABLE inboxes (
        address TEXT PRIMARY KEY,
        ns TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        wake_port INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE replies (
        seq INTEGER PRIMARY KEY,
        inbox TEXT NOT NULL,
        id TEXT,
        type TEXT NOT NULL,
        key TEXT,
        body BLOB NOT NULL,
        content_type TEXT,
        headers TEXT,
        sent_at REAL NOT NULL
    )""",
    "CREATE INDEX replies_inbox ON replies (inbox, seq)",
)

_SCHEMA = (
    """CREATE TABLE state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        bindings_version INTEGER NOT NULL,
        consumers_version INTEGER NOT NULL
    )""",
    "INSERT INTO state (id, bindings_version, consumers_version) VALUES (1, 0, 0)",
    _GROUPS.format(name="groups"),
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
        retained INTEGER NOT NULL DEFAULT 1,
        ns TEXT NOT NULL DEFAULT 'tidings',
        reply_to TEXT
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
    _DEDUPE.format(name="dedupe"),
    _DEDUPE_EXPIRY,
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
    *_REQUEST_REPLY,
)

# Version 1 -> 2. The DEFAULTs of the new columns keep a process of version 1 that is still
# running working in the default namespace until it restarts.
_TO_2 = (
    "ALTER TABLE log ADD COLUMN ns TEXT NOT NULL DEFAULT 'tidings'",
    _GROUPS.format(name="groups_v2"),
    "INSERT INTO groups_v2 (gid, ns, name, ordered, concurrency, max_ready, created_at)"
    " SELECT gid, 'tidings', name, ordered, concurrency, NULL, created_at FROM groups",
    "DROP TABLE groups",
    "ALTER TABLE groups_v2 RENAME TO groups",
    _DEDUPE.format(name="dedupe_v2"),
    "INSERT INTO dedupe_v2 (ns, grp, event_id, expires_at, done, owner)"
    " SELECT 'tidings', grp, event_id, expires_at, 1, NULL FROM dedupe",
    "DROP TABLE dedupe",
    "ALTER TABLE dedupe_v2 RENAME TO dedupe",
    _DEDUPE_EXPIRY,
    # Every process reloads its cached topology (group ids are kept, names gain a namespace).
    "UPDATE state SET bindings_version = bindings_version + 1,"
    " consumers_version = consumers_version + 1",
)

# Version 2 -> 3. Only additions: a process of version 2 that is still running keeps working
# (a request its workers take gets no reply until they restart).
_TO_3 = ("ALTER TABLE log ADD COLUMN reply_to TEXT", *_REQUEST_REPLY)

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _TO_2, 2: _TO_3}
"""The statements that take a file from a version to the next."""


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table of the current version and stamp the file (inside the caller's
    write transaction, in an empty file)."""
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a tidings file of an older version to `SCHEMA_VERSION` in place, in one write
    transaction: should anything fail (a full disk), the file stays as it was. Another
    process may have migrated it first; then nothing is done. Returns the version found.

    The connection must be in autocommit mode, outside a transaction.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version < SCHEMA_VERSION:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return int(version)
