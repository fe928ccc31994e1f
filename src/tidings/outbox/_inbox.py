"""The inbox: a transactional handler's run, its effects and its inbox row in one transaction.

The row ``(bus, group, event_id)`` is inserted first, in the transaction the handler's
session runs in. A row that exists means the event was handled: the delivery is a duplicate
and the handler does not run. On PostgreSQL a copy in flight at the same time waits on the
first copy's uncommitted row and then sees it; on SQLite the first copy holds the one write
lock until it commits. Should a concurrent copy still reach the commit (a unique-key
violation), it is a duplicate too. The handler's writes and what it published through its
context (staged in the outbox) commit with the row, or roll back with it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .._clock import Clock
from ._tables import inbox

__all__ = ["HandlerSession", "InboxStore"]

HandlerSession = AsyncSession
"""The session a transactional handler gets as ``ctx.session``."""

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class InboxStore:
    """One bus's inbox rows, and the transactions transactional handlers run in.

    Args:
        engine: the application's database.
        bus: the bus name.
        clock: the bus's clock (``processed_at``, for expiry).
    """

    warn_every = 60.0

    def __init__(self, engine: AsyncEngine, bus: str, clock: Clock) -> None:
        self.engine = engine
        self.bus = bus
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._warned_at = -math.inf

    async def run_transaction(
        self,
        group: str,
        event_id: str,
        *,
        replayed: bool,
        body: Callable[[AsyncSession], Awaitable[T]],
        duplicate: Callable[[], T],
        busy: Callable[[str], T],
    ) -> T:
        """Run `body` with a session in a new transaction holding the inbox row of
        ``(group, event_id)``, and commit; return its result.

        Return ``duplicate()`` without running `body` when the row exists (or a concurrent
        copy committed it first), and ``busy(reason)`` when the row cannot be written
        (the database is down or locked). A replayed delivery runs again (its row is
        updated). An exception of `body` rolls everything back and propagates.
        """
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            try:
                fresh = await self._record(session, group, event_id, replayed)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError):
                    raise
                return busy(self._unavailable(exc))
            except OSError as exc:
                return busy(self._unavailable(exc))
            if not fresh:
                await session.rollback()
                return duplicate()
            result = await body(session)
            await session.flush()  # the handler's own write errors are its failure
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                if await self.seen(group, event_id):
                    return duplicate()
                raise
        return result

    async def _record(
        self, session: AsyncSession, group: str, event_id: str, replayed: bool
    ) -> bool:
        row = {
            "bus": self.bus,
            "group_name": group,
            "event_id": event_id,
            "processed_at": self.clock.time(),
        }
        statement: Any = self._insert(inbox).values(row)
        if replayed:
            statement = statement.on_conflict_do_update(
                index_elements=[inbox.c.bus, inbox.c.group_name, inbox.c.event_id],
                set_={"processed_at": row["processed_at"]},
            )
        else:
            statement = statement.on_conflict_do_nothing()
        result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 1))

    async def seen(self, group: str, event_id: str) -> bool:
        """True when the inbox holds ``(group, event_id)`` (committed)."""
        query = select(inbox.c.event_id).where(
            inbox.c.bus == self.bus, inbox.c.group_name == group, inbox.c.event_id == event_id
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    def _unavailable(self, exc: BaseException) -> str:
        reason = f"inbox database unavailable: {_describe(exc)}"
        now = self.clock.time()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            logger.warning(
                "bus %r: cannot write the inbox (%s); transactional deliveries wait and "
                "retry, uncounted",
                self.bus,
                reason,
            )
        return reason
