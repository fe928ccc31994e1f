"""A broker file of schema version 1, built the way that release built its files, for the
tests of the migration (kept frozen here: it must not follow the current schema)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The schema as version 1 created it, statement for statement (kept here, frozen, so the
# migration is always tested against what old files really hold).
V1_SCHEMA = (
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


def build_v1_file(path: Path, now: float) -> None:
    """A version-1 file as that release wrote it: created the way it created files, holding
    two groups (one ordered), pending deliveries (one retried once), a retained event that
    was delivered already, a dead letter, a dedupe marker and counters."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {0x54494447}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executemany(
            "INSERT INTO groups (gid, name, ordered, concurrency, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(1, "orders", 0, 16, now - 60), (2, "ledger", 1, 4, now - 60)],
        )
        conn.executemany(
            "INSERT INTO bindings (gid, pattern) VALUES (?, ?)", [(1, "order.*"), (2, "entry.#")]
        )
        conn.executemany(
            "INSERT INTO log (seq, id, type, key, body, content_type, headers, published_at,"
            " target, retained) VALUES (?, ?, ?, ?, ?, 'application/json', ?, ?, NULL, 1)",
            [
                (1, "e1", "order.placed", None, b'{"n": 1}', '{"x-h": "1"}', now - 30),
                (2, "e2", "entry.made", "k", b'{"n": 2}', None, now - 25),
                (3, "e3", "order.placed", None, b'{"n": 3}', None, now - 20),
            ],
        )
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
        conn.execute("INSERT INTO dedupe VALUES ('orders', 'e0', ?)", (now + 3600,))
        conn.execute("INSERT INTO counters VALUES (1, ?, 3, 1)", (int(now // 10),))
        conn.execute("UPDATE state SET bindings_version = 4")
    finally:
        conn.close()


def schema_version(path: Path) -> int:
    """The ``user_version`` of the file at `path`."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
