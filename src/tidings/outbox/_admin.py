"""`OutboxAdmin`: one bus's outbox as an operator sees it (``tidings outbox list|retry|purge``,
the outbox line of ``tidings queues``, the progress of ``tidings outbox relay``).

It works on the application's database as it is and never creates anything in it: a SQLite
file that does not exist and tables that were never made are errors that say so, as a
database that cannot be reached is. Dead rows are named by their event id, or by a prefix of
it (the command line decides what is unique enough).

Retrying a dead row makes it pending again with its attempts reset and due at once: on
PostgreSQL the relays are notified in the same transaction; elsewhere the next poll finds it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._clock import Clock
from .._exceptions import ConfigError, TidingsError
from ._database import Database
from ._stats import OutboxStats
from ._store import CHANNEL, OutboxStore
from ._tables import DEAD, PENDING, SENT, outbox

__all__ = ["Entry", "OutboxAdmin"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A pending or dead row of the outbox, as ``tidings outbox list`` shows it.

    Attributes:
        row: the row's id (its staging order).
        event_id: the message's id.
        type: the message's type.
        key: its ordering key, or None.
        group: the group a command is sent to, or None for an event.
        state: ``"pending"`` or ``"dead"``.
        created_at: when it was staged (epoch seconds).
        attempts: failed publishes counted so far.
        reason: why it is dead, or why its last publish failed ("" when none did).
        available_at: when a pending row is next due (epoch seconds; 0 for at once).
        leased_until: while a relay holds a pending row, when its lease ends; else None.
    """

    row: int
    event_id: str
    type: str
    key: str | None
    group: str | None
    state: str
    created_at: float
    attempts: int
    reason: str
    available_at: float
    leased_until: float | None

    def age(self, now: float) -> float:
        """Seconds since it was staged."""
        return max(0.0, now - self.created_at)


def _entry(r: Any) -> Entry:
    return Entry(
        r.id,
        r.event_id,
        r.type,
        r.key,
        r.group_name,
        r.state,
        r.created_at,
        r.attempts,
        r.last_error or "",
        r.available_at,
        r.lease_until,
    )


class OutboxAdmin:
    """One bus's outbox rows in an application's database that is not opened by a bus.

    Args:
        engine: the application's database (the ``database`` of the application's bus).
        bus: the bus name (the rows' ``bus`` column).
        clock: where ages and retries take the time from.
    """

    def __init__(self, engine: AsyncEngine, bus: str, clock: Clock) -> None:
        self.engine = engine
        self.bus = bus
        self.clock = clock
        self._store = OutboxStore(engine, bus, clock)
        self._checked = False

    def describe(self) -> str:
        """The database's URL, password masked."""
        return self.engine.url.render_as_string(hide_password=True)

    async def check(self) -> None:
        """Fail with one clear line unless the outbox table is there to read.

        Raises:
            ConfigError: a SQLite file that does not exist (it is not created), or a
                database without the tidings tables.
            TidingsError: the database cannot be reached.
        """
        if self._checked:
            return
        self._check_file()
        async with self._reaching():
            await Database(self.engine).prepare(create_tables=False)
        self._checked = True

    def _check_file(self) -> None:
        """Refuse a SQLite file that does not exist (connecting would create it)."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or not url.database:
            return
        path = Path(url.database)
        if not path.is_file():
            raise ConfigError(
                f"no database file at {path.absolute()} (the outbox of bus {self.bus!r}); "
                "run the application once, or check its Bus(database=...)"
            )

    @contextlib.asynccontextmanager
    async def _reaching(self) -> AsyncIterator[None]:
        """Say a database that cannot be reached as one `TidingsError` naming it."""
        try:
            yield
        except (DBAPIError, OSError) as exc:
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise TidingsError(
                f"database {self.describe()}: {type(exc).__name__}: {detail}"
            ) from exc

    @contextlib.asynccontextmanager
    async def _connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (in a transaction committed on exit when `write`)."""
        async with self._reaching():
            opened = self.engine.begin() if write else self.engine.connect()
            async with opened as conn:
                yield conn

    async def close(self) -> None:
        """Close the database connections this admin opened."""
        await self.engine.dispose()

    # -- reading ---------------------------------------------------------------------------

    async def stats(self) -> OutboxStats:
        """Pending and dead rows, and the oldest pending row's age."""
        await self.check()
        async with self._reaching():
            pending, dead, oldest = await self._store.stats()
        return OutboxStats(pending=pending, dead=dead, oldest_age=oldest)

    async def list_pending(self, limit: int = 100, offset: int = 0) -> list[Entry]:
        """Pending rows (waiting, leased to a relay or backing off), in staging order."""
        return await self._list(PENDING, limit, offset)

    async def list_dead(self, limit: int = 100, offset: int = 0) -> list[Entry]:
        """Dead rows, in staging order."""
        return await self._list(DEAD, limit, offset)

    async def _list(self, state: str, limit: int, offset: int) -> list[Entry]:
        await self.check()
        query = (
            select(outbox)
            .where(outbox.c.bus == self.bus, outbox.c.state == state)
            .order_by(outbox.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._connect() as conn:
            return [_entry(r) for r in await conn.execute(query)]

    async def find_dead(self, given: str, *, prefix: bool) -> list[Entry]:
        """The dead rows whose event id is `given`, or starts with it when `prefix`."""
        await self.check()
        match = (
            outbox.c.event_id.startswith(given, autoescape=True)
            if prefix
            else outbox.c.event_id == given
        )
        query = (
            select(outbox)
            .where(outbox.c.bus == self.bus, outbox.c.state == DEAD, match)
            .order_by(outbox.c.id)
        )
        async with self._connect() as conn:
            return [_entry(r) for r in await conn.execute(query)]

    async def sent_since(self, since: float) -> int:
        """How many rows the relays of this bus marked sent since `since` (epoch seconds;
        sent rows are kept for ``outbox_retention``)."""
        await self.check()
        query = (
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.bus == self.bus, outbox.c.state == SENT, outbox.c.sent_at >= since)
        )
        async with self._connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    # -- changing --------------------------------------------------------------------------

    async def retry_dead(self, rows: Sequence[int] | None = None) -> int:
        """Make dead rows (all of them when `rows` is None) pending again: attempts reset,
        due at once. Return how many."""
        await self.check()
        where = [outbox.c.bus == self.bus, outbox.c.state == DEAD]
        if rows is not None:
            where.append(outbox.c.id.in_(list(rows)))
        query = (
            update(outbox)
            .where(*where)
            .values(
                state=PENDING,
                attempts=0,
                # Due at once, whatever the relay's clock says (as a staged row is).
                available_at=0.0,
                claimed_by=None,
                lease_until=None,
                last_error=None,
            )
        )
        async with self._connect(write=True) as conn:
            count = int((await conn.execute(query)).rowcount)
            if count:
                await self._notify(conn)
        return count

    async def purge_dead(self, rows: Sequence[int] | None = None) -> int:
        """Delete dead rows (all of them when `rows` is None). Return how many."""
        await self.check()
        where = [outbox.c.bus == self.bus, outbox.c.state == DEAD]
        if rows is not None:
            where.append(outbox.c.id.in_(list(rows)))
        async with self._connect(write=True) as conn:
            return int((await conn.execute(delete(outbox).where(*where))).rowcount)

    async def _notify(self, conn: AsyncConnection) -> None:
        if self.engine.dialect.name == "postgresql":
            # Delivered to the listening relays when the transaction commits.
            await conn.execute(select(func.pg_notify(CHANNEL, self.bus)))
