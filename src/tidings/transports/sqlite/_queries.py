"""Read-only queries of the embedded broker, run on the reader thread.

Each function takes the reader connection and the current time. Multi-statement reads run
in one short read transaction so their numbers agree with each other; none is held open
(a long read transaction would stop WAL checkpoints).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .._failure import RawDeadLetter
from .._stats import GroupStats
from ._txn import COUNTER_BUCKET

__all__ = [
    "CONSUMER_STALE_AFTER",
    "dead_letter_bound",
    "dead_letters_by_id",
    "dead_letters_page",
    "is_marked",
    "log_overflow",
    "ping",
    "read_stats",
]

CONSUMER_STALE_AFTER = 30.0
"""Seconds without a heartbeat after which a consumer registration no longer counts."""

_LOG_ROW_OVERHEAD = 64  # bytes a log row takes besides its texts and body, roughly

_RATE_WINDOW = 60.0
_DEAD_RECENT_WINDOW = 300.0

_DEAD_LETTER_COLUMNS = (
    "d.rowid, d.entry_id, d.event_id, d.type, d.body, d.content_type, d.headers, d.key,"
    " d.reason, d.exception_type, d.message, d.traceback, d.attempts, d.first_failed_at,"
    " d.last_failed_at"
)


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def ping(conn: sqlite3.Connection, now: float) -> None:
    """A cheap query that fails when the file cannot be read."""
    conn.execute("SELECT bindings_version FROM state").fetchone()


def is_marked(conn: sqlite3.Connection, now: float, ns: str, group: str, event_id: str) -> bool:
    """True when an unexpired "done" marker exists (a claim is not one)."""
    row = conn.execute(
        "SELECT 1 FROM dedupe WHERE ns = ? AND grp = ? AND event_id = ? AND expires_at > ?"
        " AND done = 1",
        (ns, group, event_id, now),
    ).fetchone()
    return row is not None


def _dead_letter(group: str, row: Any) -> tuple[int, RawDeadLetter]:
    (rowid, entry_id, event_id, mtype, body, ctype, headers, key, reason, exc_type, message,
     tb, attempts, first, last) = row  # fmt: skip
    return int(rowid), RawDeadLetter(
        entry_id=entry_id,
        group=group,
        id=event_id,
        type=mtype,
        body=body,
        content_type=ctype,
        headers=json.loads(headers) if headers else {},
        key=key,
        reason=reason,
        exception_type=exc_type,
        message=message,
        traceback=tb,
        attempts=attempts,
        first_failed_at=first,
        last_failed_at=last,
    )


def dead_letters_page(
    conn: sqlite3.Connection,
    now: float,
    ns: str,
    group: str,
    limit: int,
    offset: int = 0,
    after: int = 0,
    upto: int | None = None,
) -> list[tuple[int, RawDeadLetter]]:
    """Dead letters of `group` (of namespace `ns`) oldest first, with their row ids (for
    paging)."""
    rows = conn.execute(
        f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters AS d JOIN groups AS g"
        " ON g.gid = d.gid WHERE g.ns = ? AND g.name = ? AND d.rowid > ? AND d.rowid <= ?"
        " ORDER BY d.rowid LIMIT ? OFFSET ?",
        (ns, group, after, upto if upto is not None else 2**62, limit, offset),
    ).fetchall()
    return [_dead_letter(group, row) for row in rows]


def dead_letters_by_id(
    conn: sqlite3.Connection, now: float, ns: str, group: str, entry_ids: Sequence[str]
) -> list[tuple[int, RawDeadLetter]]:
    """The dead letters of `group` among `entry_ids`, oldest first; missing ids are skipped."""
    found: list[tuple[int, RawDeadLetter]] = []
    for entry_id in dict.fromkeys(entry_ids):
        row = conn.execute(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters AS d JOIN groups AS g"
            " ON g.gid = d.gid WHERE g.ns = ? AND g.name = ? AND d.entry_id = ?",
            (ns, group, entry_id),
        ).fetchone()
        if row is not None:
            found.append(_dead_letter(group, row))
    found.sort(key=lambda pair: pair[0])
    return found


def dead_letter_bound(conn: sqlite3.Connection, now: float, ns: str, group: str) -> int:
    """The newest dead letter's row id in `group` (0 when empty): replaying "all" stops
    there, so entries that die again during the replay are not replayed in a loop."""
    row = conn.execute(
        "SELECT max(d.rowid) FROM dead_letters AS d JOIN groups AS g ON g.gid = d.gid"
        " WHERE g.ns = ? AND g.name = ?",
        (ns, group),
    ).fetchone()
    return int(row[0] or 0)


# The rows of one namespace's groups (an aggregate over the others' would be thrown away).
_OURS = "gid IN (SELECT gid FROM groups WHERE ns = :ns)"


def _stats_rows(
    conn: sqlite3.Connection, now: float, ns: str, first_bucket: int
) -> tuple[Any, ...]:
    """(groups, queue counts, dead-letter counts, consumers, rates) by gid, in one snapshot."""
    args = {"ns": ns, "now": now}
    with _snapshot(conn):
        groups = conn.execute(
            "SELECT gid, name FROM groups WHERE ns = :ns ORDER BY name", args
        ).fetchall()
        queues = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT gid, total(available_at <= :now),"
                " total(available_at > :now AND lease_owner IS NOT NULL),"
                " total(available_at > :now AND lease_owner IS NULL),"
                " min(CASE WHEN available_at <= :now THEN available_at END)"
                f" FROM deliveries WHERE {_OURS} GROUP BY gid",
                args,
            )
        }
        dead = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT gid, count(*), total(last_failed_at > :since) FROM dead_letters"
                f" WHERE {_OURS} GROUP BY gid",
                {**args, "since": now - _DEAD_RECENT_WINDOW},
            )
        }
        consumers = dict(
            conn.execute(
                f"SELECT gid, count(*) FROM consumers WHERE heartbeat_at > :since AND {_OURS}"
                " GROUP BY gid",
                {**args, "since": now - CONSUMER_STALE_AFTER},
            ).fetchall()
        )
        rates = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT gid, total(published), total(acked) FROM counters"
                f" WHERE bucket >= :first AND {_OURS} GROUP BY gid",
                {**args, "first": first_bucket},
            )
        }
    return groups, queues, dead, consumers, rates


def read_stats(conn: sqlite3.Connection, now: float, ns: str) -> list[GroupStats]:
    """Counters of every declared group of namespace `ns`, by name."""
    first_bucket = int((now - _RATE_WINDOW) // COUNTER_BUCKET) + 1
    span = max(now - first_bucket * COUNTER_BUCKET, 1.0)
    groups, queues, dead, consumers, rates = _stats_rows(conn, now, ns, first_bucket)
    result = []
    for gid, name in groups:
        ready, in_flight, scheduled, oldest = queues.get(gid, (0, 0, 0, None))
        dead_total, dead_recent = dead.get(gid, (0, 0))
        published, acked = rates.get(gid, (0.0, 0.0))
        result.append(
            GroupStats(
                group=name,
                ready=int(ready),
                in_flight=int(in_flight),
                scheduled=int(scheduled),
                dead=int(dead_total),
                consumers=int(consumers.get(gid, 0)),
                oldest_age=max(now - oldest, 0.0) if oldest is not None else 0.0,
                publish_rate=published / span,
                ack_rate=acked / span,
                dead_recent=int(dead_recent),
            )
        )
    return result


def log_overflow(conn: sqlite3.Connection, now: float, *, budget: int) -> int | None:
    """The newest position of the retained log past `budget` bytes, counting from the newest
    event; it and everything older may be dropped. None when the log fits.

    An event's size is its body, headers, id, type and key plus a fixed row overhead. The
    count scans the log, so it runs only when the file's used pages exceed the budget.
    """
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    used = conn.execute("PRAGMA page_count").fetchone()[0]
    used -= conn.execute("PRAGMA freelist_count").fetchone()[0]
    if used * page_size <= budget:
        return None
    row = conn.execute(
        "SELECT seq FROM (SELECT seq, sum(length(body) + coalesce(length(headers), 0)"
        " + length(id) + length(type) + coalesce(length(key), 0) + ?)"
        " OVER (ORDER BY seq DESC) AS total FROM log WHERE retained = 1)"
        " WHERE total > ? ORDER BY seq DESC LIMIT 1",
        (_LOG_ROW_OVERHEAD, budget),
    ).fetchone()
    return None if row is None else int(row[0])
