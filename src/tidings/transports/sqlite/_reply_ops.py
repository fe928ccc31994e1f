"""Write operations of reply inboxes: keeping an inbox alive, sending a reply to one, taking
its replies, closing it, and removing inboxes whose owner died.

See `_txn` for how the writer batches them, and `_replies` for the inbox itself.
"""

from __future__ import annotations

import json

from .._message import Delivery, OutgoingMessage
from ._txn import Txn, WriteOp, encode_headers

__all__ = ["CloseInboxOp", "InboxOp", "SendReplyOp", "TakeRepliesOp", "sweep_inboxes"]


def sweep_inboxes(tx: Txn) -> int:
    """Delete the inboxes (of every namespace) whose owner stopped renewing them, with the
    replies waiting in them; return how many. Cheap when there are none: the table holds
    one row per live bus instance that made a request."""
    expired = [
        address
        for (address,) in tx.conn.execute(
            "SELECT address FROM inboxes WHERE expires_at <= ?", (tx.now,)
        )
    ]
    for address in expired:
        tx.conn.execute("DELETE FROM replies WHERE inbox = ?", (address,))
        tx.conn.execute("DELETE FROM inboxes WHERE address = ?", (address,))
    return len(expired)


class InboxOp(WriteOp):
    """Create an inbox or push its expiry one lease ahead (its owner's heartbeat), creating
    it again if a sweep removed it while the owner was paused; then sweep the inboxes of
    owners that are gone."""

    __slots__ = ("address", "lease_seconds", "pid", "port")
    phase = 0

    def __init__(self, address: str, port: int, pid: int, lease_seconds: float) -> None:
        super().__init__()
        self.address, self.port, self.pid = address, port, pid
        self.lease_seconds = lease_seconds

    def apply(self, tx: Txn) -> None:
        tx.conn.execute(
            "INSERT INTO inboxes (address, ns, pid, host, wake_port, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (address) DO UPDATE SET expires_at = excluded.expires_at",
            (self.address, tx.topology.ns, self.pid, tx.topology.host, self.port, tx.now,
             tx.now + self.lease_seconds),
        )  # fmt: skip
        sweep_inboxes(tx)


class SendReplyOp(WriteOp):
    """Store a reply in an inbox of the namespace and wake its owner; result: False when
    there is no such inbox (closed, swept after its owner died, or never there), and the
    reply was dropped.

    An inbox past its expiry but not swept yet still takes the reply: its owner may only
    have been paused, and if it is dead the sweep deletes the reply with the inbox.
    """

    __slots__ = ("address", "message")
    durable = True
    phase = 1

    def __init__(self, address: str, message: OutgoingMessage) -> None:
        super().__init__()
        self.address, self.message = address, message

    def apply(self, tx: Txn) -> bool:
        row = tx.conn.execute(
            "SELECT host, wake_port FROM inboxes WHERE address = ? AND ns = ?",
            (self.address, tx.topology.ns),
        ).fetchone()
        if row is None:
            return False
        m = self.message
        tx.conn.execute(
            "INSERT INTO replies (inbox, id, type, key, body, content_type, headers, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.address, m.id, m.type, m.key, m.body, m.content_type,
             encode_headers(m.headers), m.published_at or tx.now),
        )  # fmt: skip
        host, port = row
        if port > 0 and host == tx.topology.host:
            tx.reply_ports.add(port)
        return True


class TakeRepliesOp(WriteOp):
    """Remove up to `limit` replies from an inbox; result: them, in order of arrival."""

    __slots__ = ("address", "limit")
    phase = 3

    def __init__(self, address: str, limit: int) -> None:
        super().__init__()
        self.address, self.limit = address, limit

    def apply(self, tx: Txn) -> list[Delivery]:
        rows = tx.conn.execute(
            "SELECT seq, id, type, key, body, content_type, headers FROM replies"
            " WHERE inbox = ? ORDER BY seq LIMIT ?",
            (self.address, self.limit),
        ).fetchall()
        if not rows:
            return []
        # Inside one write transaction nobody adds a row below the last one taken.
        tx.conn.execute(
            "DELETE FROM replies WHERE inbox = ? AND seq <= ?", (self.address, rows[-1][0])
        )
        return [
            Delivery(
                group=self.address, id=mid, type=mtype, body=body, content_type=ctype,
                headers=json.loads(headers) if headers else {}, key=key,
            )
            for _, mid, mtype, key, body, ctype, headers in rows
        ]  # fmt: skip


class CloseInboxOp(WriteOp):
    """Remove an inbox and the replies still in it (nothing when it is gone already)."""

    __slots__ = ("address",)

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def apply(self, tx: Txn) -> None:
        tx.conn.execute("DELETE FROM replies WHERE inbox = ?", (self.address,))
        tx.conn.execute("DELETE FROM inboxes WHERE address = ?", (self.address,))
