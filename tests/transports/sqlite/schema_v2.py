"""A broker file of schema version 2 (namespaces), built the way that release built its
files, for the tests of the migration to version 3 (kept frozen here: it must not follow the
current schema)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The schema as version 2 created it, statement for statement.
V2_SCHEMA = (
    """CREATE TABLE state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        bindings_version INTEGER NOT NULL,
        consumers_version INTEGER NOT NULL
    )""",
    "INSERT INTO state (id, bindings_version, consumers_version) VALUES (1, 0, 0)",
    """CREATE TABLE groups (
        gid INTEGER PRIMARY KEY,
        ns TEXT NOT NULL DEFAULT 'tidings',
        name TEXT NOT NULL,
        ordered INTEGER NOT NULL DEFAULT 0,
        concurrency INTEGER NOT NULL DEFAULT 16,
        max_ready INTEGER,
        created_at REAL NOT NULL,
        UNIQUE (ns, name)
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
        retained INTEGER NOT NULL DEFAULT 1,
        ns TEXT NOT NULL DEFAULT 'tidings'
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
        ns TEXT NOT NULL DEFAULT 'tidings',
        grp TEXT NOT NULL,
        event_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 1,
        owner TEXT,
        PRIMARY KEY (ns, grp, event_id)
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


def build_v2_file(path: Path, now: float) -> None:
    """A version-2 file as that release wrote it: the group ``orders`` of the bus
    ``tidings`` and the group ``billing`` of the bus ``shop``, each with a pending delivery
    (one retried once, with headers), a retained event delivered already, a dead letter, a
    dedupe marker and counters."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in V2_SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {0x54494447}")
        conn.execute("PRAGMA user_version = 2")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executemany(
            "INSERT INTO groups (gid, ns, name, ordered, concurrency, max_ready, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (1, "tidings", "orders", 0, 16, None, now - 60),
                (2, "shop", "billing", 1, 4, 100, now - 60),
            ],
        )
        conn.executemany(
            "INSERT INTO bindings (gid, pattern) VALUES (?, ?)", [(1, "order.*"), (2, "bill.#")]
        )
        conn.executemany(
            "INSERT INTO log (seq, id, type, key, body, content_type, headers, published_at,"
            " target, retained, ns) VALUES (?, ?, ?, ?, ?, 'application/json', ?, ?, ?, 1, ?)",
            [
                (1, "e1", "order.placed", None, b'{"n": 1}', '{"x-h": "1"}', now - 30, None,
                 "tidings"),
                (2, "e2", "bill.due", "k", b'{"n": 2}', None, now - 25, "billing", "shop"),
                (3, "e3", "order.placed", None, b'{"n": 3}', None, now - 20, None, "tidings"),
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO deliveries (gid, log_seq, key, attempt, available_at, first_failed_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(1, 1, None, 2, now - 1, now - 5), (2, 2, "k", 1, now - 1, None)],
        )
        conn.execute(
            "INSERT INTO dead_letters (entry_id, gid, event_id, type, body, content_type,"
            " headers, key, reason, exception_type, message, traceback, attempts,"
            " first_failed_at, last_failed_at) VALUES ('d1', 1, 'e0', 'order.placed', X'7B7D',"
            " 'application/json', NULL, NULL, 'failed 3 of 3 attempts', 'builtins.ValueError',"
            " 'boom', 'Traceback ...', 3, ?, ?)",
            (now - 50, now - 40),
        )
        conn.execute(
            "INSERT INTO dedupe (ns, grp, event_id, expires_at, done, owner)"
            " VALUES ('tidings', 'orders', 'e0', ?, 1, NULL)",
            (now + 3600,),
        )
        conn.execute("INSERT INTO counters VALUES (1, ?, 3, 1)", (int(now // 10),))
        conn.execute("UPDATE state SET bindings_version = 4")
    finally:
        conn.close()
