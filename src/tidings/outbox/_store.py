"""The outbox table's operations: staging rows in an application's transaction, claiming
them for a relay with a lease, and settling them (sent, back off, dead); stats and cleanup.

Claims keep per-key order: a row with a key is claimed only when every earlier pending row
of its key is claimed with it. A row backing off or leased to another relay holds back the
later rows of its key; a dead row does not (its key goes on without it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, exists, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from .._clock import Clock
from ..transports import OutgoingMessage
from ._tables import DEAD, PENDING, SENT, inbox, outbox

__all__ = ["CHANNEL", "OutboxRow", "OutboxStore", "rows_of", "stage", "stage_sync"]

CHANNEL = "tidings_outbox"
"""The PostgreSQL ``NOTIFY`` channel a staging transaction signals (payload: the bus name)."""

_DELETE_BATCH = 1000


def rows_of(bus: str, messages: Sequence[OutgoingMessage]) -> list[dict[str, Any]]:
    """The outbox rows of `messages`, staged by `bus` (due at once; their delay counts from
    their ``published_at``)."""
    return [
        {
            "bus": bus,
            "event_id": m.id,
            "type": m.type,
            "key": m.key,
            "group_name": m.group,
            "body": m.body,
            "content_type": m.content_type,
            "headers": json.dumps(dict(m.headers), separators=(",", ":")),
            "delay": float(m.delay),
            "created_at": m.published_at,
            # Due at once, whatever the relay's clock says (another host's may lag).
            "available_at": 0.0,
            "state": PENDING,
            "attempts": 0,
        }
        for m in messages
    ]


async def stage(session: AsyncSession, bus: str, messages: Sequence[OutgoingMessage]) -> None:
    """Insert `messages` into the outbox in `session`'s transaction (it is not committed)."""
    await session.execute(outbox.insert(), rows_of(bus, messages))
    if _to_notify(session.sync_session, bus):
        # Delivered to listening relays when (and only if) the transaction commits.
        await session.execute(select(func.pg_notify(CHANNEL, bus)))


def stage_sync(session: Session, bus: str, messages: Sequence[OutgoingMessage]) -> None:
    """`stage` for a synchronous `Session`."""
    session.execute(outbox.insert(), rows_of(bus, messages))
    if _to_notify(session, bus):
        session.execute(select(func.pg_notify(CHANNEL, bus)))


_NOTIFIED = "tidings.outbox.notified"


def _to_notify(session: Session, bus: str) -> bool:
    """True for the first staging of `bus` in the session's (innermost) transaction on
    PostgreSQL: one notification a transaction is enough (PostgreSQL folds identical ones
    into one at commit), and a transaction staging many messages saves a round trip each.
    A savepoint has its own, so a rolled-back savepoint does not take the notification of
    what its transaction stages later with it."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    transaction = session.get_nested_transaction() or session.get_transaction()
    notified: dict[str, Any] = session.info.setdefault(_NOTIFIED, {})
    if notified.get(bus) is transaction:
        return False
    notified[bus] = transaction  # held until the next one: its identity is never reused
    return True


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A pending row claimed by a relay."""

    id: int
    event_id: str
    type: str
    key: str | None
    group: str | None
    body: bytes
    content_type: str
    headers: str
    delay: float
    created_at: float
    attempts: int

    def message(self, now: float) -> OutgoingMessage:
        """The message to publish; its delay counts from when it was staged."""
        return OutgoingMessage(
            id=self.event_id,
            type=self.type,
            body=self.body,
            content_type=self.content_type,
            headers=json.loads(self.headers),
            key=self.key,
            delay=max(0.0, self.created_at + self.delay - now),
            group=self.group,
            published_at=self.created_at,
        )


def _row(r: Row[Any]) -> OutboxRow:
    return OutboxRow(
        r.id,
        r.event_id,
        r.type,
        r.key,
        r.group_name,
        bytes(r.body),
        r.content_type,
        r.headers,
        r.delay,
        r.created_at,
        r.attempts,
    )


class OutboxStore:
    """One bus's rows in the outbox table.

    Args:
        engine: the application's database.
        bus: the bus name (the rows' ``bus`` column).
        clock: the bus's clock.
    """

    def __init__(self, engine: AsyncEngine, bus: str, clock: Clock) -> None:
        self.engine = engine
        self.bus = bus
        self.clock = clock
        self.postgres = engine.dialect.name == "postgresql"

    # -- claiming --------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease: float) -> list[OutboxRow]:
        """Lease up to `limit` due rows to `owner` for `lease` seconds, in staging order,
        keeping per-key order (due rows whose key another relay is claiming at this moment
        are left for later)."""
        now = self.clock.time()
        async with self.engine.connect() as conn:
            if not self.postgres:
                # SQLite has one writer: take its write lock first (an update of no row),
                # so no other relay claims between our read and our update.
                await conn.execute(update(outbox).where(outbox.c.id == -1).values(attempts=0))
            due = (await conn.execute(self._due(now, limit))).all()
            if not due:
                return []
            rows = [_row(r) for r in due]
            taken = await self._in_key_order(conn, rows)
            if taken:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([r.id for r in taken]))
                    .values(claimed_by=owner, lease_until=now + lease)
                )
            await conn.commit()
        return taken

    def _due(self, now: float, limit: int) -> Any:
        earlier = outbox.alias("earlier")
        # An earlier pending row of the key that is leased or backing off holds this one.
        held = exists().where(
            earlier.c.bus == outbox.c.bus,
            earlier.c.key == outbox.c.key,
            earlier.c.state == PENDING,
            earlier.c.id < outbox.c.id,
            or_(earlier.c.available_at > now, earlier.c.lease_until > now),
        )
        query = (
            select(outbox)
            .where(
                outbox.c.bus == self.bus,
                outbox.c.state == PENDING,
                outbox.c.available_at <= now,
                or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= now),
                or_(outbox.c.key.is_(None), ~held),
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self.postgres:
            # Rows another relay is claiming right now are skipped, not waited for;
            # `_in_key_order` then holds back the later rows of their keys.
            query = query.with_for_update(skip_locked=True, of=outbox)
        return query

    async def _in_key_order(self, conn: AsyncConnection, rows: list[OutboxRow]) -> list[OutboxRow]:
        """The rows of `rows` whose earlier pending rows of their key are all in `rows`."""
        keys = {r.key for r in rows if r.key is not None}
        if not keys:
            return rows
        mine = {r.id for r in rows}
        pending = await conn.execute(
            select(outbox.c.id, outbox.c.key)
            .where(
                outbox.c.bus == self.bus,
                outbox.c.state == PENDING,
                outbox.c.key.in_(keys),
                outbox.c.id <= max(mine),
            )
            .order_by(outbox.c.id)
        )
        held: set[str] = set()
        ok: set[int] = set()
        for row_id, key in pending:
            if key in held:
                continue
            if row_id in mine:
                ok.add(row_id)
            else:
                held.add(key)
        return [r for r in rows if r.key is None or r.id in ok]

    # -- settling --------------------------------------------------------------------------

    async def sent(self, ids: Sequence[int]) -> None:
        """Mark rows sent (after the broker confirmed them)."""
        await self._set(ids, state=SENT, sent_at=self.clock.time(), last_error=None)

    async def release(self, ids: Sequence[int]) -> None:
        """Give rows back unsent, as they were (nothing counted)."""
        await self._set(ids)

    async def back_off(self, ids: Sequence[int], delay: float, error: str, *, count: bool) -> None:
        """Make rows wait `delay` seconds before the next try, counting a failed attempt if
        `count`."""
        values: dict[str, Any] = {"available_at": self.clock.time() + delay, "last_error": error}
        if count:
            values["attempts"] = outbox.c.attempts + 1
        await self._set(ids, **values)

    async def dead(self, ids: Sequence[int], reason: str) -> None:
        """Give up on rows: they stay in the outbox, dead, with the reason."""
        await self._set(ids, state=DEAD, last_error=reason, attempts=outbox.c.attempts + 1)

    async def _set(self, ids: Sequence[int], **values: Any) -> None:
        if not ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(list(ids)), outbox.c.state == PENDING)
                .values(claimed_by=None, lease_until=None, **values)
            )

    # -- inspecting ------------------------------------------------------------------------

    async def stats(self) -> tuple[int, int, float]:
        """Pending count, dead count, age of the oldest pending row."""
        now = self.clock.time()
        query = (
            select(outbox.c.state, func.count(), func.min(outbox.c.created_at))
            .where(outbox.c.bus == self.bus, outbox.c.state.in_([PENDING, DEAD]))
            .group_by(outbox.c.state)
        )
        async with self.engine.connect() as conn:
            found = {state: (n, oldest) for state, n, oldest in await conn.execute(query)}
        pending, oldest = found.get(PENDING, (0, None))
        dead = found.get(DEAD, (0, None))[0]
        return int(pending), int(dead), max(0.0, now - oldest) if oldest is not None else 0.0

    # -- cleaning up -----------------------------------------------------------------------

    async def delete_sent(self, older_than: float) -> int:
        """Delete rows sent more than `older_than` seconds ago, in batches."""
        cut = self.clock.time() - older_than
        batch = (
            select(outbox.c.id)
            .where(outbox.c.bus == self.bus, outbox.c.state == SENT, outbox.c.sent_at < cut)
            .limit(_DELETE_BATCH)
        )
        return await self._delete_batches(delete(outbox).where(outbox.c.id.in_(batch)))

    async def delete_inbox(self, older_than: float) -> int:
        """Delete inbox rows of this bus processed more than `older_than` seconds ago."""
        cut = self.clock.time() - older_than
        key = (inbox.c.bus, inbox.c.group_name, inbox.c.event_id)
        old = inbox.alias("old")
        batch = (
            select(old.c.bus, old.c.group_name, old.c.event_id)
            .where(old.c.bus == self.bus, old.c.processed_at < cut)
            .limit(_DELETE_BATCH)
        )
        return await self._delete_batches(delete(inbox).where(tuple_(*key).in_(batch)))

    async def _delete_batches(self, statement: Any) -> int:
        total = 0
        while True:
            async with self.engine.begin() as conn:
                n = (await conn.execute(statement)).rowcount
            total += n
            if n < _DELETE_BATCH:
                return total
