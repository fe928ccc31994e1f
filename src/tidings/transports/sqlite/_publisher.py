"""Publishing to the embedded broker: the publishes of one event-loop turn commit together,
and each publish call is stored whole or not at all.

A call is refused whole, inside the publishing transaction, when a group it reaches is at its
``max_ready`` bound (`QueueFull`), or when it holds an unroutable message and the bus raises
on those (``on_unroutable="error"``). A refused call stores nothing; the other calls of the
same transaction are not affected. An unroutable message is never written, so the retained
log never holds one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from ..._exceptions import QueueFull
from .._futures import relay
from .._message import OutgoingMessage
from ._store import WriterThread
from ._txn import INSERT_DELIVERY, INSERT_LOG, Txn, WriteOp, encode_headers

__all__ = ["PublishOp", "PublishQueue"]

Call = list[OutgoingMessage]
Outcome = list[bool] | QueueFull
"""What one publish call came to: the routed flag of each message, or the refusal."""

# The ready deliveries of a group, counted up to its bound (the count only has to reach it):
# due ones (a lease that expired included) and those scheduled that no failure put there
# (delayed publishes, and postponed deliveries that never failed). In-flight deliveries and
# deliveries waiting for a retry do not count.
_READY = (
    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE gid = ?1 AND (available_at <= ?2"
    " OR (lease_owner IS NULL AND first_failed_at IS NULL)) LIMIT ?3)"
)


class PublishOp(WriteOp):
    """Publish calls: each call's messages are appended to the log and fanned out to their
    groups, or none of them is; result: one `Outcome` per call.

    Args:
        calls: the messages of each publish call.
        atomic: refuse a call holding an unroutable message (``on_unroutable="error"``).
    """

    __slots__ = ("atomic", "calls")
    durable = True
    phase = 1

    def __init__(self, calls: Sequence[Call], *, atomic: bool) -> None:
        super().__init__()
        self.calls, self.atomic = calls, atomic

    def apply(self, tx: Txn) -> object:
        return self.apply_all(tx, [self])[0]

    @classmethod
    def apply_all(cls, tx: Txn, ops: Sequence[WriteOp]) -> list[object]:
        fanout = _Fanout(tx)
        results: list[object] = []
        for op in cast("Sequence[PublishOp]", ops):
            results.append([fanout.publish(call, op.atomic) for call in op.calls])
        fanout.write()
        return results


class _Fanout:
    """The rows the publish calls of one transaction add, and the ready counts of the
    bounded groups they reach (read once, then kept up to date here)."""

    def __init__(self, tx: Txn) -> None:
        self.tx = tx
        self.seq = tx.next_seq()
        self.log_rows: list[tuple[object, ...]] = []
        self.delivery_rows: list[tuple[object, ...]] = []
        self.ready: dict[int, int] = {}

    def targets(self, m: OutgoingMessage) -> tuple[int, ...]:
        topo = self.tx.topology
        if m.group is None:
            return topo.route(m.type)
        gid = topo.gids.get(m.group)
        return () if gid is None else (gid,)

    def publish(self, call: Call, atomic: bool) -> Outcome:
        """Store `call` whole, or nothing of it; say which."""
        targets = [self.targets(m) for m in call]
        routed = [bool(gids) for gids in targets]
        if atomic and not all(routed):
            return routed
        adding: dict[int, int] = {}
        for gids in targets:
            for gid in gids:
                adding[gid] = adding.get(gid, 0) + 1
        full = [gid for gid, n in adding.items() if self._over(gid, n)]
        if full:
            return self._refusal(full)
        for gid, n in adding.items():
            if gid in self.ready:
                self.ready[gid] += n
        for m, gids in zip(call, targets, strict=True):
            if gids:
                self._store(m, gids)
        return routed

    def _over(self, gid: int, adding: int) -> bool:
        bound = self.tx.topology.max_ready.get(gid)
        if bound is None:
            return False
        if gid not in self.ready:
            (count,) = self.tx.conn.execute(_READY, (gid, self.tx.now, bound)).fetchone()
            self.ready[gid] = int(count)
        return self.ready[gid] + adding > bound

    def _refusal(self, full: list[int]) -> QueueFull:
        topo = self.tx.topology
        names = sorted(topo.names[gid] for gid in full)
        bounds = ", ".join(f"{n!r} (max_ready={topo.max_ready[topo.gids[n]]})" for n in names)
        if len(names) == 1:
            what, them = f"group {bounds} of bus {topo.ns!r} is full", "the group or raise its"
        else:
            what, them = f"groups {bounds} of bus {topo.ns!r} are full", "them or raise their"
        return QueueFull(
            f"{what}: nothing of this publish was stored; add consumers to {them} max_ready, "
            "then publish again",
            groups=names,
        )

    def _store(self, m: OutgoingMessage, gids: tuple[int, ...]) -> None:
        tx = self.tx
        self.seq += 1
        self.log_rows.append(
            (self.seq, m.id, m.type, m.key, m.body, m.content_type, encode_headers(m.headers),
             m.published_at or tx.now, m.group, 1, tx.topology.ns, m.reply_to)
        )  # fmt: skip
        available_at = tx.now + m.delay if m.delay > 0 else tx.now
        ordered = tx.topology.ordered
        for gid in gids:
            key = m.key if ordered[gid] else None
            self.delivery_rows.append((gid, self.seq, key, available_at, int(m.replayed)))
            tx.published[gid] = tx.published.get(gid, 0) + 1
            tx.notify.add(gid)

    def write(self) -> None:
        self.tx.conn.executemany(INSERT_LOG, self.log_rows)
        self.tx.conn.executemany(INSERT_DELIVERY, self.delivery_rows)


class PublishQueue:
    """Publishes of one event-loop turn go to the writer as one `PublishOp`: one queued job
    (and one wake-up of the writer thread) for a burst of concurrent `publish` calls instead
    of one each. Every caller still gets its own future, resolved by that commit with its
    own outcome. Should the joint op fail, each caller's messages are tried again on their
    own, so one bad publish does not fail the others.

    Args:
        writer: the transport's writer thread.
        atomic: refuse a call holding an unroutable message whole (``on_unroutable="error"``).
    """

    def __init__(self, writer: WriterThread, *, atomic: bool) -> None:
        self._writer = writer
        self._atomic = atomic
        self._pending: list[tuple[Call, asyncio.Future[list[bool]]]] = []

    def publish(self, messages: Sequence[OutgoingMessage]) -> asyncio.Future[list[bool]]:
        """Queue one publish call; the future gets its routed flags after the commit, or
        `QueueFull`, or the error of the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._submit)
        self._pending.append((list(messages), future))
        return future

    def _submit(self) -> None:
        pending, self._pending = self._pending, []
        self._send(pending)

    def _send(self, pending: list[tuple[Call, asyncio.Future[list[bool]]]]) -> None:
        try:
            op = PublishOp([messages for messages, _ in pending], atomic=self._atomic)
            committed = self._writer.submit(op)
        except BaseException as exc:
            for _, future in pending:
                _fail(future, exc)
            return
        committed.add_done_callback(lambda done: self._split(done, pending))

    def _split(
        self,
        done: asyncio.Future[Any],
        pending: list[tuple[Call, asyncio.Future[list[bool]]]],
    ) -> None:
        if done.cancelled() or done.exception() is not None:
            if len(pending) == 1:
                relay(done, pending[0][1])
                return
            for call in pending:
                if not call[1].done():
                    self._send([call])
            return
        outcomes: list[Outcome] = done.result()
        for (_, future), outcome in zip(pending, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, QueueFull):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
