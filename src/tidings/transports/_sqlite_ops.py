"""Write operations of the embedded broker, run by the writer thread in group-committed batches.

Every operation is applied inside one ``BEGIN IMMEDIATE`` transaction together with whatever
else was queued at the same time. Operations of one batch were all pending at once, so any
order among them is a valid serialisation; the writer runs them by `WriteOp.phase` (topology
first, then publishes, then settles, then claims), and operations of one class that can share
a statement (publishes, acks, dedupe marks) run as one ``executemany``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .._exceptions import ConfigError
from .._routing import matches, validate_pattern
from ._base import Delivery, Failure, GroupSpec, OutgoingMessage

__all__ = [
    "AckOp",
    "ClaimOp",
    "CleanupOp",
    "DeadLetterOp",
    "DeclareOp",
    "DedupeMarkOp",
    "DlqMoveOp",
    "DlqPurgeOp",
    "HeartbeatOp",
    "Lease",
    "PublishOp",
    "RegisterOp",
    "ReleaseOp",
    "RenewOp",
    "ReplayOp",
    "Topology",
    "Txn",
    "UnregisterOp",
    "WriteOp",
    "encode_headers",
]

COUNTER_BUCKET = 10  # seconds per counters row


def encode_headers(headers: object) -> str | None:
    """Headers as compact JSON text, or None when there are none (the common case)."""
    if not headers:
        return None
    return json.dumps(dict(headers), separators=(",", ":"))  # type: ignore[call-overload]


@dataclass(slots=True)
class Lease:
    """`Delivery.handle` of the embedded broker: which row, claimed by whom, at which attempt.

    Settling is guarded by all three, so a consumer whose lease expired and was re-claimed
    elsewhere cannot settle the other consumer's delivery.
    """

    row_id: int
    attempt: int
    owner: str
    gid: int
    settled: bool = False


class Topology:
    """The writer's cache of groups, bindings and wake-up ports, refreshed inside each
    transaction when the `state` row says another process changed them."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.bindings_version = -1
        self.consumers_version = -1
        self.gids: dict[str, int] = {}
        self.ordered: dict[int, bool] = {}
        self.patterns: dict[int, tuple[str, ...]] = {}
        self.routes: dict[str, tuple[int, ...]] = {}
        self.ports: list[tuple[int, int]] = []

    def invalidate(self) -> None:
        """Forget everything; the next transaction reloads."""
        self.bindings_version = self.consumers_version = -1

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Reload what changed since the last transaction (one tiny query when nothing did)."""
        bv, cv = conn.execute("SELECT bindings_version, consumers_version FROM state").fetchone()
        if bv != self.bindings_version:
            self.gids, self.ordered, self.routes = {}, {}, {}
            for gid, name, ordered in conn.execute("SELECT gid, name, ordered FROM groups"):
                self.gids[name] = gid
                self.ordered[gid] = bool(ordered)
            found: dict[int, list[str]] = {}
            for gid, pattern in conn.execute("SELECT gid, pattern FROM bindings"):
                found.setdefault(gid, []).append(pattern)
            self.patterns = {gid: tuple(p) for gid, p in found.items()}
            self.bindings_version = bv
        if cv != self.consumers_version:
            self.ports = conn.execute(
                "SELECT DISTINCT gid, wake_port FROM consumers WHERE host = ? AND wake_port > 0",
                (self.host,),
            ).fetchall()
            self.consumers_version = cv

    def route(self, routing_key: str) -> tuple[int, ...]:
        """Groups with a pattern matching `routing_key`."""
        gids = self.routes.get(routing_key)
        if gids is None:
            gids = tuple(
                gid
                for gid, patterns in self.patterns.items()
                if any(matches(p, routing_key) for p in patterns)
            )
            self.routes[routing_key] = gids
        return gids

    def gid(self, group: str) -> int:
        """The id of a declared group; raise `ConfigError` for an unknown one."""
        gid = self.gids.get(group)
        if gid is None:
            raise ConfigError(f"group {group!r} is not declared")
        return gid


class Txn:
    """What the ops of one batch share: the connection, the time, the caches, and what to
    report after the commit (groups to wake, counters to bump)."""

    __slots__ = ("acked", "conn", "notify", "now", "published", "topology")

    def __init__(self, conn: sqlite3.Connection, now: float, topology: Topology) -> None:
        self.conn = conn
        self.now = now
        self.topology = topology
        self.notify: set[int] = set()
        self.published: dict[int, int] = {}
        self.acked: dict[int, int] = {}

    def next_seq(self) -> int:
        """The highest log sequence number so far.

        Log rows still referenced by a delivery are never deleted, so max + 1 is above every
        position a delivery points to even if clean-up removed the newest rows.
        """
        row = self.conn.execute("SELECT max(seq) FROM log").fetchone()
        return int(row[0] or 0)

    def bump_version(self, column: str) -> None:
        """Tell every process to reload its cached topology or port list."""
        self.conn.execute(f"UPDATE state SET {column} = {column} + 1")

    def flush_counters(self) -> None:
        """Add this batch's publish and ack counts to the current time bucket."""
        if not self.published and not self.acked:
            return
        bucket = int(self.now // COUNTER_BUCKET)
        rows = [
            (gid, bucket, self.published.get(gid, 0), self.acked.get(gid, 0))
            for gid in self.published.keys() | self.acked.keys()
        ]
        self.conn.executemany(
            "INSERT INTO counters (gid, bucket, published, acked) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (gid, bucket) DO UPDATE SET published = published + excluded.published,"
            " acked = acked + excluded.acked",
            rows,
        )


class WriteOp:
    """One queued write; `future` is resolved on the event loop after the commit."""

    __slots__ = ("future",)
    phase: ClassVar[int] = 2

    def __init__(self) -> None:
        self.future: asyncio.Future[object] | None = None

    def apply(self, tx: Txn) -> object:
        """Run this op's statements inside the batch's transaction; return its result."""
        raise NotImplementedError

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        """Apply several ops of this class; classes that can share statements override it."""
        return [op.apply(tx) for op in ops]


def _insert_group(tx: Txn, spec: GroupSpec) -> int:
    cur = tx.conn.execute(
        "INSERT INTO groups (name, ordered, concurrency, created_at) VALUES (?, ?, ?, ?)",
        (spec.name, int(spec.ordered), spec.concurrency, tx.now),
    )
    gid = int(cur.lastrowid or 0)
    tx.conn.executemany(
        "INSERT INTO bindings (gid, pattern) VALUES (?, ?)", [(gid, p) for p in set(spec.patterns)]
    )
    tx.bump_version("bindings_version")
    return gid


class DeclareOp(WriteOp):
    """Create or update groups and replace their bindings."""

    __slots__ = ("specs",)
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
                "SELECT gid, ordered, concurrency FROM groups WHERE name = ?", (spec.name,)
            ).fetchone()
            if row is None:
                _insert_group(tx, spec)
                continue
            gid, ordered, concurrency = row
            if bool(ordered) != spec.ordered or concurrency != spec.concurrency:
                conn.execute(
                    "UPDATE groups SET ordered = ?, concurrency = ? WHERE gid = ?",
                    (int(spec.ordered), spec.concurrency, gid),
                )
                tx.bump_version("bindings_version")
            if bool(ordered) != spec.ordered:
                # Only ordered groups keep the key on their deliveries (it feeds an index).
                conn.execute(
                    "UPDATE deliveries SET key = CASE WHEN ? THEN "
                    "(SELECT key FROM log WHERE seq = log_seq) END WHERE gid = ?",
                    (int(spec.ordered), gid),
                )
            stored = {p for (p,) in conn.execute("SELECT pattern FROM bindings WHERE gid = ?", (gid,))}
            if stored != set(spec.patterns):
                conn.execute("DELETE FROM bindings WHERE gid = ?", (gid,))
                conn.executemany(
                    "INSERT INTO bindings (gid, pattern) VALUES (?, ?)",
                    [(gid, p) for p in set(spec.patterns)],
                )
                tx.bump_version("bindings_version")
        tx.topology.refresh(conn)


_INSERT_LOG = (
    "INSERT INTO log (seq, id, type, key, body, content_type, headers, published_at, target,"
    " retained) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (gid, log_seq, key, attempt, available_at, replayed)"
    " VALUES (?, ?, ?, 1, ?, ?)"
)


class PublishOp(WriteOp):
    """Append messages to the log and fan each out to its groups; result: routed flags."""

    __slots__ = ("messages",)
    phase = 1

    def __init__(self, messages: Sequence[OutgoingMessage]) -> None:
        super().__init__()
        self.messages = messages

    def apply(self, tx: Txn) -> list[bool]:
        return self.apply_all(tx, [self])[0]  # type: ignore[return-value]

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        topo, now = tx.topology, tx.now
        seq = tx.next_seq()
        log_rows: list[tuple[object, ...]] = []
        delivery_rows: list[tuple[object, ...]] = []
        results: list[object] = []
        for op in ops:
            assert isinstance(op, PublishOp)
            routed: list[bool] = []
            for m in op.messages:
                seq += 1
                log_rows.append(
                    (seq, m.id, m.type, m.key, m.body, m.content_type, encode_headers(m.headers),
                     m.published_at or now, m.group, 1)
                )  # fmt: skip
                if m.group is None:
                    gids = topo.route(m.type)
                else:
                    gid = topo.gids.get(m.group)
                    gids = () if gid is None else (gid,)
                available_at = now + m.delay if m.delay > 0 else now
                for gid in gids:
                    key = m.key if topo.ordered[gid] else None
                    delivery_rows.append((gid, seq, key, available_at, int(m.replayed)))
                    tx.published[gid] = tx.published.get(gid, 0) + 1
                    tx.notify.add(gid)
                routed.append(bool(gids))
            results.append(routed)
        tx.conn.executemany(_INSERT_LOG, log_rows)
        tx.conn.executemany(_INSERT_DELIVERY, delivery_rows)
        return results


class AckOp(WriteOp):
    """Delete a settled delivery."""

    __slots__ = ("lease",)

    def __init__(self, lease: Lease) -> None:
        super().__init__()
        self.lease = lease

    def apply(self, tx: Txn) -> None:
        self.apply_all(tx, [self])

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        rows = []
        for op in ops:
            assert isinstance(op, AckOp)
            lease = op.lease
            rows.append((lease.row_id, lease.owner, lease.attempt))
            tx.acked[lease.gid] = tx.acked.get(lease.gid, 0) + 1
            if tx.topology.ordered.get(lease.gid):
                tx.notify.add(lease.gid)  # the next delivery of its key may now go
        tx.conn.executemany(
            "DELETE FROM deliveries WHERE id = ? AND lease_owner = ? AND attempt = ?", rows
        )
        return [None] * len(ops)


class RetryOp(WriteOp):
    """Reschedule a delivery with attempt + 1, keeping its place in its key's order."""

    __slots__ = ("at", "delay", "lease")

    def __init__(self, lease: Lease, delay: float, failure: Failure) -> None:
        super().__init__()
        self.lease, self.delay, self.at = lease, delay, failure.at

    def apply(self, tx: Txn) -> None:
        lease = self.lease
        tx.conn.execute(
            "UPDATE deliveries SET attempt = attempt + 1, available_at = ?, lease_owner = NULL,"
            " first_failed_at = coalesce(first_failed_at, ?)"
            " WHERE id = ? AND lease_owner = ? AND attempt = ?",
            (tx.now + max(self.delay, 0.0), self.at, lease.row_id, lease.owner, lease.attempt),
        )
        tx.notify.add(lease.gid)


class DeadLetterOp(WriteOp):
    """Move a delivery to its group's dead-letter queue."""

    __slots__ = ("delivery", "failure", "lease")

    def __init__(self, lease: Lease, delivery: Delivery, failure: Failure) -> None:
        super().__init__()
        self.lease, self.delivery, self.failure = lease, delivery, failure

    def apply(self, tx: Txn) -> None:
        lease, d, f = self.lease, self.delivery, self.failure
        cur = tx.conn.execute(
            "DELETE FROM deliveries WHERE id = ? AND lease_owner = ? AND attempt = ?",
            (lease.row_id, lease.owner, lease.attempt),
        )
        if cur.rowcount != 1:
            return  # the lease was lost; whoever holds the delivery now settles it
        tx.conn.execute(
            "INSERT INTO dead_letters (entry_id, gid, event_id, type, body, content_type,"
            " headers, key, reason, exception_type, message, traceback, attempts,"
            " first_failed_at, last_failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, lease.gid, d.id, d.type, d.body, d.content_type,
             encode_headers(d.headers), d.key, f.reason, f.exception_type, f.message, f.traceback,
             lease.attempt, d.first_failed_at or f.at, f.at),
        )  # fmt: skip
        if tx.topology.ordered.get(lease.gid):
            tx.notify.add(lease.gid)


class RenewOp(WriteOp):
    """Extend the leases a consumer still holds."""

    __slots__ = ("lease_seconds", "leases")

    def __init__(self, leases: Sequence[Lease], lease_seconds: float) -> None:
        super().__init__()
        self.leases, self.lease_seconds = leases, lease_seconds

    def apply(self, tx: Txn) -> None:
        until = tx.now + self.lease_seconds
        tx.conn.executemany(
            "UPDATE deliveries SET available_at = ? WHERE id = ? AND lease_owner = ? AND attempt = ?",
            [(until, x.row_id, x.owner, x.attempt) for x in self.leases],
        )


class ReleaseOp(WriteOp):
    """Give deliveries back to their group at once (a stopping consumer)."""

    __slots__ = ("count_attempt", "leases")

    def __init__(self, leases: Sequence[Lease], count_attempt: bool) -> None:
        super().__init__()
        self.leases, self.count_attempt = leases, count_attempt

    def apply(self, tx: Txn) -> None:
        step = int(self.count_attempt)
        tx.conn.executemany(
            "UPDATE deliveries SET available_at = ?, lease_owner = NULL, attempt = attempt + ?"
            " WHERE id = ? AND lease_owner = ? AND attempt = ?",
            [(tx.now, step, x.row_id, x.owner, x.attempt) for x in self.leases],
        )
        tx.notify.update(x.gid for x in self.leases)


_CLAIM = (
    "SELECT d.id, d.attempt, d.lease_owner, d.replayed, d.first_failed_at,"
    " l.id, l.type, l.key, l.body, l.content_type, l.headers"
    " FROM deliveries AS d JOIN log AS l ON l.seq = d.log_seq"
    " WHERE d.gid = ?1 AND d.available_at <= ?2 {extra} ORDER BY d.available_at LIMIT ?3"
)
_CLAIM_UNORDERED = _CLAIM.format(extra="")
# Only the head of a key (its oldest delivery, whatever its state) may be claimed.
_CLAIM_ORDERED = _CLAIM.format(
    extra="AND (d.key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries AS p"
    " WHERE p.gid = d.gid AND p.key = d.key AND p.id < d.id))"
)


class ClaimOp(WriteOp):
    """Lease up to `limit` ready deliveries; result: (deliveries, next due time or None)."""

    __slots__ = ("gid", "group", "lease_seconds", "limit", "owner")
    phase = 3

    def __init__(self, group: str, gid: int, limit: int, owner: str, lease_seconds: float) -> None:
        super().__init__()
        self.group, self.gid, self.limit = group, gid, limit
        self.owner, self.lease_seconds = owner, lease_seconds

    def apply(self, tx: Txn) -> tuple[list[Delivery], float | None]:
        conn, now, gid, owner = tx.conn, tx.now, self.gid, self.owner
        sql = _CLAIM_ORDERED if tx.topology.ordered.get(gid) else _CLAIM_UNORDERED
        rows = conn.execute(sql, (gid, now, self.limit)).fetchall()
        deliveries: list[Delivery] = []
        updates: list[tuple[float, str, int, int]] = []
        until = now + self.lease_seconds
        for row_id, attempt, previous_owner, replayed, first_failed, mid, mtype, key, body, ctype, hdrs in rows:  # noqa: E501
            if previous_owner is not None:
                attempt += 1  # its last lease expired: that attempt counts
            updates.append((until, owner, attempt, row_id))
            deliveries.append(
                Delivery(
                    group=self.group, id=mid, type=mtype, body=body, content_type=ctype,
                    headers=json.loads(hdrs) if hdrs else {}, key=key, attempt=attempt,
                    replayed=bool(replayed), first_failed_at=first_failed,
                    handle=Lease(row_id, attempt, owner, gid),
                )
            )  # fmt: skip
        if updates:
            conn.executemany(
                "UPDATE deliveries SET available_at = ?, lease_owner = ?, attempt = ? WHERE id = ?",
                updates,
            )
        (next_due,) = conn.execute(
            "SELECT min(available_at) FROM deliveries WHERE gid = ? AND available_at > ?"
            " AND (lease_owner IS NULL OR lease_owner != ?)",
            (gid, now, owner),
        ).fetchone()
        return deliveries, next_due


class RegisterOp(WriteOp):
    """Register a consumer (creating its group if nobody declared it); result: the gid."""

    __slots__ = ("consumer_id", "pid", "port", "spec")
    phase = 0

    def __init__(self, consumer_id: str, spec: GroupSpec, port: int, pid: int) -> None:
        super().__init__()
        self.consumer_id, self.spec, self.port, self.pid = consumer_id, spec, port, pid

    def apply(self, tx: Txn) -> int:
        gid = tx.topology.gids.get(self.spec.name)
        if gid is None:
            gid = _insert_group(tx, self.spec)
        tx.conn.execute(
            "INSERT OR REPLACE INTO consumers (id, gid, pid, host, wake_port, started_at,"
            " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.consumer_id, gid, self.pid, tx.topology.host, self.port, tx.now, tx.now),
        )
        tx.bump_version("consumers_version")
        tx.topology.refresh(tx.conn)
        return gid


class UnregisterOp(WriteOp):
    """Remove a consumer registration."""

    __slots__ = ("consumer_id",)
    phase = 0

    def __init__(self, consumer_id: str) -> None:
        super().__init__()
        self.consumer_id = consumer_id

    def apply(self, tx: Txn) -> None:
        tx.conn.execute("DELETE FROM consumers WHERE id = ?", (self.consumer_id,))
        tx.bump_version("consumers_version")


class HeartbeatOp(WriteOp):
    """Refresh registrations; re-create any that a clean-up removed while we were paused."""

    __slots__ = ("registrations",)
    phase = 0

    def __init__(self, registrations: Sequence[tuple[str, int, int, int]]) -> None:
        super().__init__()
        self.registrations = registrations  # (consumer id, gid, port, pid)

    def apply(self, tx: Txn) -> None:
        conn = tx.conn
        for consumer_id, gid, port, pid in self.registrations:
            cur = conn.execute(
                "UPDATE consumers SET heartbeat_at = ? WHERE id = ?", (tx.now, consumer_id)
            )
            if cur.rowcount == 0:
                conn.execute(
                    "INSERT INTO consumers (id, gid, pid, host, wake_port, started_at,"
                    " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (consumer_id, gid, pid, tx.topology.host, port, tx.now, tx.now),
                )
                tx.bump_version("consumers_version")


class ReplayOp(WriteOp):
    """Re-deliver retained log entries to one group; result: how many."""

    __slots__ = ("group", "since")
    phase = 1

    def __init__(self, group: str, since: float) -> None:
        super().__init__()
        self.group, self.since = group, since

    def apply(self, tx: Txn) -> int:
        gid = tx.topology.gid(self.group)
        cur = tx.conn.execute(
            "INSERT INTO deliveries (gid, log_seq, key, attempt, available_at, replayed)"
            " SELECT ?1, l.seq, CASE WHEN ?2 THEN l.key END, 1, ?3, 1 FROM log AS l"
            " WHERE l.published_at >= ?4 AND l.retained = 1"
            " AND (l.target = ?5 OR (l.target IS NULL AND EXISTS (SELECT 1 FROM bindings AS b"
            " WHERE b.gid = ?1 AND tidings_matches(b.pattern, l.type)))) ORDER BY l.seq",
            (gid, int(tx.topology.ordered[gid]), tx.now, self.since, self.group),
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
                _INSERT_LOG,
                (seq, m.id, m.type, m.key, m.body, m.content_type, encode_headers(m.headers),
                 m.published_at or now, self.group, 0),
            )  # fmt: skip
            key = m.key if tx.topology.ordered[gid] else None
            conn.execute(_INSERT_DELIVERY, (gid, seq, key, now + max(m.delay, 0.0), int(m.replayed)))
            moved += 1
        if moved:
            tx.notify.add(gid)
        return moved


class DlqPurgeOp(WriteOp):
    """Delete dead letters of a group (all when `entry_ids` is None); result: how many."""

    __slots__ = ("entry_ids", "group")

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


class DedupeMarkOp(WriteOp):
    """Write a dedupe marker."""

    __slots__ = ("event_id", "group", "ttl")

    def __init__(self, group: str, event_id: str, ttl: float) -> None:
        super().__init__()
        self.group, self.event_id, self.ttl = group, event_id, ttl

    def apply(self, tx: Txn) -> None:
        self.apply_all(tx, [self])

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        rows = []
        for op in ops:
            assert isinstance(op, DedupeMarkOp)
            rows.append((op.group, op.event_id, tx.now + op.ttl))
        tx.conn.executemany(
            "INSERT OR REPLACE INTO dedupe (grp, event_id, expires_at) VALUES (?, ?, ?)", rows
        )
        return [None] * len(ops)


class CleanupOp(WriteOp):
    """Delete expired markers, old log entries, stale registrations and counters, a chunk
    at a time so the write lock is held briefly; result: True when more is left to do."""

    __slots__ = ("chunk", "retention", "stale_after")
    phase = 4

    def __init__(self, retention: float, stale_after: float, chunk: int = 5000) -> None:
        super().__init__()
        self.retention, self.stale_after, self.chunk = retention, stale_after, chunk

    def apply(self, tx: Txn) -> bool:
        conn, now, chunk = tx.conn, tx.now, self.chunk
        removed = [
            conn.execute(
                "DELETE FROM dedupe WHERE (grp, event_id) IN (SELECT grp, event_id FROM dedupe"
                " WHERE expires_at <= ? LIMIT ?)",
                (now, chunk),
            ).rowcount,
            conn.execute(
                "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE published_at < ?"
                " AND seq NOT IN (SELECT log_seq FROM deliveries) LIMIT ?)",
                (now - self.retention, chunk),
            ).rowcount,
            conn.execute(
                "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE retained = 0"
                " AND seq NOT IN (SELECT log_seq FROM deliveries) LIMIT ?)",
                (chunk,),
            ).rowcount,
        ]
        stale = conn.execute(
            "DELETE FROM consumers WHERE heartbeat_at < ?", (now - self.stale_after,)
        ).rowcount
        if stale:
            tx.bump_version("consumers_version")
        conn.execute(
            "DELETE FROM counters WHERE bucket < ?", (int((now - 3600) // COUNTER_BUCKET),)
        )
        more = any(n >= chunk for n in removed)
        if not more:
            free, pages = (
                conn.execute("PRAGMA freelist_count").fetchone()[0],
                conn.execute("PRAGMA page_count").fetchone()[0],
            )
            if free > 256 and free * 4 > pages:
                conn.execute(f"PRAGMA incremental_vacuum({int(free)})")
        return more
