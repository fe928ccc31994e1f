"""The dedupe store kept in the broker file itself: "done" markers and claims, per namespace.

A claim is a row with ``done = 0`` that lives for its lease; a "done" marker is a row with
``done = 1`` that lives for the dedupe ttl. Claiming is one write op, so it runs inside the
writer's ``BEGIN IMMEDIATE`` transaction: of two processes (or two deliveries in one
process) claiming one event id at once, exactly one gets it. Marks and releases are
group-committed with everything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import cast

from .._transport import Claimed, DedupeStore
from ._queries import is_marked
from ._store import ReaderThread, WriterThread
from ._txn import Txn, WriteOp

__all__ = [
    "DedupeClaimOp",
    "DedupeMarkOp",
    "DedupeReleaseOp",
    "DedupeRenewOp",
    "SqliteDedupeStore",
]


class SqliteDedupeStore(DedupeStore):
    """Dedupe markers and claims in the broker file, in the bus's namespace.

    Claims are held in the name of this store (one per transport), so a copy that fails
    releases its own claim only, never one another process took after it expired.

    Args:
        reader: the open transport's reader thread (raises while the transport is closed).
        writer: the open transport's writer thread (likewise).
        ns: the namespace (the bus name).
    """

    def __init__(
        self, reader: Callable[[], ReaderThread], writer: Callable[[], WriterThread], ns: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ns = ns
        self._owner = uuid.uuid4().hex

    async def seen(self, group: str, event_id: str) -> bool:
        """True when `event_id` is marked done for `group` (claims do not count)."""
        ns = self._ns
        return await self._reader().read(
            lambda conn, now: is_marked(conn, now, ns, group, event_id)
        )

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        """Mark `event_id` done for `group` for `ttl` seconds (replacing a claim)."""
        await self._writer().submit(DedupeMarkOp(self._ns, group, event_id, ttl))

    async def claim(self, group: str, event_id: str, lease: float) -> Claimed:
        """Claim `event_id` for `group` for `lease` seconds, atomically across processes."""
        op = DedupeClaimOp(self._ns, group, event_id, lease, self._owner)
        return cast("Claimed", await self._writer().submit(op))

    async def complete(self, group: str, event_id: str, ttl: float) -> None:
        """Turn the claim into a "done" marker living `ttl` seconds."""
        await self.mark(group, event_id, ttl)

    async def release(self, group: str, event_id: str) -> None:
        """Drop this store's claim on `event_id`; a "done" marker is never dropped."""
        await self._writer().submit(DedupeReleaseOp(self._ns, group, event_id, self._owner))

    async def renew(self, group: str, event_id: str, lease: float) -> None:
        """Extend this store's live claim on `event_id` to `lease` seconds from now."""
        op = DedupeRenewOp(self._ns, group, event_id, lease, self._owner)
        await self._writer().submit(op)


class DedupeClaimOp(WriteOp):
    """Claim an event id unless a live claim or marker exists; result: `Claimed`."""

    __slots__ = ("event_id", "group", "lease", "ns", "owner")

    def __init__(self, ns: str, group: str, event_id: str, lease: float, owner: str) -> None:
        super().__init__()
        self.ns, self.group, self.event_id = ns, group, event_id
        self.lease, self.owner = lease, owner

    def apply(self, tx: Txn) -> Claimed:
        key = (self.ns, self.group, self.event_id)
        row = tx.conn.execute(
            "SELECT done FROM dedupe WHERE ns = ? AND grp = ? AND event_id = ? AND expires_at > ?",
            (*key, tx.now),
        ).fetchone()
        if row is not None:
            return "done" if row[0] else "busy"
        tx.conn.execute(
            "INSERT OR REPLACE INTO dedupe (ns, grp, event_id, expires_at, done, owner)"
            " VALUES (?, ?, ?, ?, 0, ?)",
            (*key, tx.now + self.lease, self.owner),
        )
        return "claimed"


class DedupeMarkOp(WriteOp):
    """Write a "done" marker (over a claim, if any)."""

    __slots__ = ("event_id", "group", "ns", "ttl")

    def __init__(self, ns: str, group: str, event_id: str, ttl: float) -> None:
        super().__init__()
        self.ns, self.group, self.event_id, self.ttl = ns, group, event_id, ttl

    def apply(self, tx: Txn) -> None:
        self.apply_all(tx, [self])

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        rows = [
            (op.ns, op.group, op.event_id, tx.now + op.ttl)
            for op in cast("Sequence[DedupeMarkOp]", ops)
        ]
        tx.conn.executemany(
            "INSERT OR REPLACE INTO dedupe (ns, grp, event_id, expires_at, done, owner)"
            " VALUES (?, ?, ?, ?, 1, NULL)",
            rows,
        )
        return [None] * len(ops)


class DedupeReleaseOp(WriteOp):
    """Drop a claim held by `owner` (a "done" marker or another owner's claim stays)."""

    __slots__ = ("event_id", "group", "ns", "owner")

    def __init__(self, ns: str, group: str, event_id: str, owner: str) -> None:
        super().__init__()
        self.ns, self.group, self.event_id, self.owner = ns, group, event_id, owner

    def apply(self, tx: Txn) -> None:
        tx.conn.execute(
            "DELETE FROM dedupe WHERE ns = ? AND grp = ? AND event_id = ? AND done = 0"
            " AND owner = ?",
            (self.ns, self.group, self.event_id, self.owner),
        )


class DedupeRenewOp(WriteOp):
    """Extend a live claim held by `owner` (a "done" marker or another owner's claim stays)."""

    __slots__ = ("event_id", "group", "lease", "ns", "owner")

    def __init__(self, ns: str, group: str, event_id: str, lease: float, owner: str) -> None:
        super().__init__()
        self.ns, self.group, self.event_id = ns, group, event_id
        self.lease, self.owner = lease, owner

    def apply(self, tx: Txn) -> None:
        tx.conn.execute(
            "UPDATE dedupe SET expires_at = ? WHERE ns = ? AND grp = ? AND event_id = ?"
            " AND done = 0 AND owner = ? AND expires_at > ?",
            (tx.now + self.lease, self.ns, self.group, self.event_id, self.owner, tx.now),
        )
