"""Write operations of consumers: claiming, renewing, releasing and settling deliveries,
and the consumer registrations used for wake-up and stats.

See `_txn` for how the writer batches them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import cast

from .._failure import Failure
from .._group import GroupSpec
from .._message import Delivery
from ._txn import Lease, Txn, WriteOp, encode_headers, insert_group

__all__ = [
    "AckOp",
    "ClaimOp",
    "DeadLetterOp",
    "HeartbeatOp",
    "RegisterOp",
    "ReleaseOp",
    "RenewOp",
    "RetryOp",
    "UnregisterOp",
]


class AckOp(WriteOp):
    """Delete settled deliveries."""

    __slots__ = ("leases",)

    def __init__(self, leases: Sequence[Lease]) -> None:
        super().__init__()
        self.leases = leases

    def apply(self, tx: Txn) -> None:
        self.apply_all(tx, [self])

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        rows = []
        ordered = tx.topology.ordered
        acked = tx.acked
        for op in cast("Sequence[AckOp]", ops):
            for lease in op.leases:
                rows.append((lease.row_id, lease.owner, lease.attempt))
                acked[lease.gid] = acked.get(lease.gid, 0) + 1
                if ordered.get(lease.gid):
                    tx.notify.add(lease.gid)  # the next delivery of its key may now go
        tx.conn.executemany(
            "DELETE FROM deliveries WHERE id = ? AND lease_owner = ? AND attempt = ?", rows
        )
        return [None] * len(ops)


class RetryOp(WriteOp):
    """Reschedule a delivery, keeping its place in its key's order: a retry (attempt + 1,
    `failed_at` recorded as the first failure if it is one) or, without `failed_at`, a
    postponement that leaves its attempt count as it is."""

    __slots__ = ("delay", "failed_at", "lease")

    def __init__(self, lease: Lease, delay: float, failed_at: float | None) -> None:
        super().__init__()
        self.lease, self.delay, self.failed_at = lease, delay, failed_at

    def apply(self, tx: Txn) -> None:
        lease = self.lease
        step = 0 if self.failed_at is None else 1
        tx.conn.execute(
            "UPDATE deliveries SET attempt = attempt + ?, available_at = ?, lease_owner = NULL,"
            " first_failed_at = coalesce(first_failed_at, ?)"
            " WHERE id = ? AND lease_owner = ? AND attempt = ?",
            (step, tx.now + max(self.delay, 0.0), self.failed_at, lease.row_id, lease.owner,
             lease.attempt),
        )  # fmt: skip
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
            " first_failed_at, last_failed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE deliveries SET available_at = ?"
            " WHERE id = ? AND lease_owner = ? AND attempt = ?",
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
    " l.id, l.type, l.key, l.body, l.content_type, l.headers, l.reply_to"
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
    """Lease up to `limit` ready deliveries; result: (deliveries, next due time or None).

    `running` holds the row ids whose callbacks still run in the claiming consumer: if one
    of their leases expired (the loop was starved past it), the consumer must not take the
    row a second time; its renewal will extend the lease instead.
    """

    __slots__ = ("gid", "group", "lease_seconds", "limit", "owner", "running")
    phase = 3

    def __init__(
        self,
        group: str,
        gid: int,
        limit: int,
        owner: str,
        lease_seconds: float,
        running: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__()
        self.group, self.gid, self.limit = group, gid, limit
        self.owner, self.lease_seconds, self.running = owner, lease_seconds, running

    def apply(self, tx: Txn) -> tuple[list[Delivery], float | None]:
        conn, now, gid, owner = tx.conn, tx.now, self.gid, self.owner
        sql = _CLAIM_ORDERED if tx.topology.ordered.get(gid) else _CLAIM_UNORDERED
        rows = conn.execute(sql, (gid, now, self.limit)).fetchall()
        deliveries: list[Delivery] = []
        updates: list[tuple[float, str, int, int]] = []
        until = now + self.lease_seconds
        for row in rows:
            row_id, attempt, previous_owner, replayed, first_failed = row[:5]
            mid, mtype, key, body, ctype, hdrs, reply_to = row[5:]
            if previous_owner is not None:
                if previous_owner == owner and row_id in self.running:
                    continue
                attempt += 1  # its last lease expired: that attempt counts
            updates.append((until, owner, attempt, row_id))
            deliveries.append(
                Delivery(
                    group=self.group, id=mid, type=mtype, body=body, content_type=ctype,
                    headers=json.loads(hdrs) if hdrs else {}, key=key, attempt=attempt,
                    replayed=bool(replayed), first_failed_at=first_failed,
                    handle=Lease(row_id, attempt, owner, gid), reply_to=reply_to,
                )
            )  # fmt: skip
        if updates:
            conn.executemany(
                "UPDATE deliveries SET available_at = ?, lease_owner = ?, attempt = ? WHERE id = ?",
                updates,
            )
        # Our own leases count too: a callback that failed without settling leaves one to
        # expire. Renewed ones only cost an empty claim now and then.
        (next_due,) = conn.execute(
            "SELECT min(available_at) FROM deliveries WHERE gid = ? AND available_at > ?",
            (gid, now),
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
            gid = insert_group(tx, self.spec)
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
