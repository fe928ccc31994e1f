"""Write operations on the topology, the retained log and the dead-letter queues, and the
clean-up (publishing is in `_publisher`, dedupe markers in `_dedupe`).

See `_txn` for how the writer batches them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._group import GroupSpec
from .._message import OutgoingMessage
from .._routing import validate_pattern
from ._reply_ops import sweep_inboxes
from ._txn import (
    COUNTER_BUCKET,
    INSERT_DELIVERY,
    INSERT_LOG,
    Txn,
    WriteOp,
    encode_headers,
    insert_group,
)

__all__ = [
    "CleanupOp",
    "DeclareOp",
    "DlqMoveOp",
    "DlqPurgeOp",
    "ReplayOp",
]


class DeclareOp(WriteOp):
    """Create or update groups of the namespace (their settings, `max_ready` included) and
    replace their bindings."""

    __slots__ = ("specs",)
    durable = True
    phase = 0

    def __init__(self, specs: Sequence[GroupSpec]) -> None:
        super().__init__()
        for spec in specs:
            for pattern in spec.patterns:
                validate_pattern(pattern)
        self.specs = list(specs)

    def apply(self, tx: Txn) -> None:
        conn = tx.conn
        for spec in self.specs:
            row = conn.execute(
                "SELECT gid, ordered, concurrency, max_ready FROM groups WHERE ns = ? AND name = ?",
                (tx.topology.ns, spec.name),
            ).fetchone()
            if row is None:
                insert_group(tx, spec)
                continue
            gid, ordered, concurrency, max_ready = row
            if (bool(ordered), concurrency, max_ready) != (
                spec.ordered,
                spec.concurrency,
                spec.max_ready,
            ):
                conn.execute(
                    "UPDATE groups SET ordered = ?, concurrency = ?, max_ready = ? WHERE gid = ?",
                    (int(spec.ordered), spec.concurrency, spec.max_ready, gid),
                )
                tx.bump_version("bindings_version")
            if bool(ordered) != spec.ordered:
                # Only ordered groups keep the key on their deliveries (it feeds an index).
                conn.execute(
                    "UPDATE deliveries SET key = CASE WHEN ? THEN "
                    "(SELECT key FROM log WHERE seq = log_seq) END WHERE gid = ?",
                    (int(spec.ordered), gid),
                )
            stored = {
                p for (p,) in conn.execute("SELECT pattern FROM bindings WHERE gid = ?", (gid,))
            }
            if stored != set(spec.patterns):
                conn.execute("DELETE FROM bindings WHERE gid = ?", (gid,))
                conn.executemany(
                    "INSERT INTO bindings (gid, pattern) VALUES (?, ?)",
                    [(gid, p) for p in set(spec.patterns)],
                )
                tx.bump_version("bindings_version")
        tx.topology.refresh(conn)


class ReplayOp(WriteOp):
    """Re-deliver retained log entries to one group; result: how many."""

    __slots__ = ("group", "since")
    durable = True
    phase = 1

    def __init__(self, group: str, since: float) -> None:
        super().__init__()
        self.group, self.since = group, since

    def apply(self, tx: Txn) -> int:
        gid = tx.topology.gid(self.group)
        cur = tx.conn.execute(
            "INSERT INTO deliveries (gid, log_seq, key, attempt, available_at, replayed)"
            " SELECT ?1, l.seq, CASE WHEN ?2 THEN l.key END, 1, ?3, 1 FROM log AS l"
            " WHERE l.published_at >= ?4 AND l.retained = 1 AND l.ns = ?6"
            " AND (l.target = ?5 OR (l.target IS NULL AND EXISTS (SELECT 1 FROM bindings AS b"
            " WHERE b.gid = ?1 AND tidings_matches(b.pattern, l.type)))) ORDER BY l.seq",
            (gid, int(tx.topology.ordered[gid]), tx.now, self.since, self.group, tx.topology.ns),
        )
        if cur.rowcount:
            tx.notify.add(gid)
        return cur.rowcount


class DlqMoveOp(WriteOp):
    """Move dead letters back to their group as new deliveries; result: how many moved.

    Each entry is deleted and its message inserted in the same transaction, and only if the
    entry was still there, so two concurrent replays cannot both move it.
    """

    __slots__ = ("entries", "group")
    durable = True
    phase = 1

    def __init__(self, group: str, entries: Sequence[tuple[str, OutgoingMessage]]) -> None:
        super().__init__()
        self.group, self.entries = group, entries

    def apply(self, tx: Txn) -> int:
        gid = tx.topology.gids.get(self.group)
        if gid is None:
            return 0
        conn, now = tx.conn, tx.now
        seq = tx.next_seq()
        moved = 0
        for entry_id, m in self.entries:
            cur = conn.execute(
                "DELETE FROM dead_letters WHERE entry_id = ? AND gid = ?", (entry_id, gid)
            )
            if cur.rowcount != 1:
                continue
            seq += 1
            # retained = 0: a copy of an event already in the log, not a new publish.
            conn.execute(
                INSERT_LOG,
                (seq, m.id, m.type, m.key, m.body, m.content_type, encode_headers(m.headers),
                 m.published_at or now, self.group, 0, tx.topology.ns, m.reply_to),
            )  # fmt: skip
            key = m.key if tx.topology.ordered[gid] else None
            available_at = now + max(m.delay, 0.0)
            conn.execute(INSERT_DELIVERY, (gid, seq, key, available_at, int(m.replayed)))
            moved += 1
        if moved:
            tx.notify.add(gid)
        return moved


class DlqPurgeOp(WriteOp):
    """Delete dead letters of a group (all when `entry_ids` is None); result: how many."""

    __slots__ = ("entry_ids", "group")
    durable = True

    def __init__(self, group: str, entry_ids: Sequence[str] | None) -> None:
        super().__init__()
        self.group, self.entry_ids = group, entry_ids

    def apply(self, tx: Txn) -> int:
        gid = tx.topology.gids.get(self.group)
        if gid is None:
            return 0
        if self.entry_ids is None:
            return tx.conn.execute("DELETE FROM dead_letters WHERE gid = ?", (gid,)).rowcount
        cur = tx.conn.executemany(
            "DELETE FROM dead_letters WHERE gid = ? AND entry_id = ?",
            [(gid, e) for e in dict.fromkeys(self.entry_ids)],
        )
        return cur.rowcount


class CleanupOp(WriteOp):
    """Delete expired markers, old log entries, stale registrations, expired reply inboxes
    and old counters, a chunk at a time so the write lock is held briefly; result: True when
    more is left to do.

    Log entries go when older than `retention` seconds, or at or before position
    `log_through` (the retained log's byte bound, see `log_overflow`), unless a delivery
    still needs them.

    After committing it, the writer gives free pages back to the file system and
    checkpoints the WAL (`WriterThread._compact`).
    """

    __slots__ = ("chunk", "log_through", "retention", "stale_after")
    phase = 4

    def __init__(
        self,
        retention: float,
        stale_after: float,
        chunk: int = 5000,
        log_through: int | None = None,
    ) -> None:
        super().__init__()
        self.retention, self.stale_after, self.chunk = retention, stale_after, chunk
        self.log_through = log_through

    def apply(self, tx: Txn) -> bool:
        conn, now, chunk = tx.conn, tx.now, self.chunk
        removed = [
            conn.execute(
                "DELETE FROM dedupe WHERE (grp, event_id) IN (SELECT grp, event_id FROM dedupe"
                " WHERE expires_at <= ? LIMIT ?)",
                (now, chunk),
            ).rowcount,
            conn.execute(
                "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE (published_at < ?"
                " OR seq <= ?) AND seq NOT IN (SELECT log_seq FROM deliveries) LIMIT ?)",
                (now - self.retention, -1 if self.log_through is None else self.log_through, chunk),
            ).rowcount,
            conn.execute(
                "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE retained = 0"
                " AND seq NOT IN (SELECT log_seq FROM deliveries) LIMIT ?)",
                (chunk,),
            ).rowcount,
        ]
        sweep_inboxes(tx)  # and their replies: inboxes of bus instances that died
        stale = conn.execute(
            "DELETE FROM consumers WHERE heartbeat_at < ?", (now - self.stale_after,)
        ).rowcount
        if stale:
            tx.bump_version("consumers_version")
        conn.execute(
            "DELETE FROM counters WHERE bucket < ?", (int((now - 3600) // COUNTER_BUCKET),)
        )
        return any(n >= chunk for n in removed)
