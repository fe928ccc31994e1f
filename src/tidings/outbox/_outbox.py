"""`Outbox`: what a bus with a ``database`` has: the engine, the outbox rows, the inbox, and
(while the bus is open) the relay and its PostgreSQL listener."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from .._clock import Clock
from .._exceptions import ConfigError, StateError
from ..transports import OutgoingMessage, Transport
from ._database import Database
from ._inbox import InboxStore
from ._notify import Listener
from ._relay import Relay
from ._settings import OutboxSettings
from ._stats import OutboxStats
from ._store import OutboxStore, stage, stage_sync

__all__ = ["Outbox"]


class Outbox:
    """The outbox and inbox of one bus.

    Args:
        database: an async SQLAlchemy URL or `AsyncEngine`.
        bus: the bus name.
        settings: the bus's outbox settings.
    """

    def __init__(self, database: str | AsyncEngine, *, bus: str, settings: OutboxSettings) -> None:
        self.database = Database(database)
        self.bus = bus
        self.settings = settings
        self._store: OutboxStore | None = None
        self._inbox: InboxStore | None = None
        self._relay: Relay | None = None
        self._listener: Listener | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, transport: Transport, clock: Clock, on_unroutable: str) -> None:
        """Prepare the tables, then start the relay (and the listener on PostgreSQL)."""
        await self.database.prepare(self.settings.create_tables)
        self._store = OutboxStore(self.engine, self.bus, clock)
        self._inbox = InboxStore(self.engine, self.bus, clock)
        self._relay = Relay(self._store, transport, self.settings, on_unroutable=on_unroutable)
        self._relay.start()
        if self.database.postgres:
            self._listener = Listener(self.engine, self.bus, self._relay.wake)
            self._listener.start()

    async def close(self) -> None:
        """Stop the listener and the relay, then release the engine (if tidings made it)."""
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._relay is not None:
            await self._relay.stop()
        await self.database.dispose()

    @property
    def store(self) -> OutboxStore:
        if self._store is None:
            raise StateError("the outbox is not open: start the bus first")
        return self._store

    # -- staging ---------------------------------------------------------------------------

    async def stage(self, session: Any, messages: Sequence[OutgoingMessage]) -> None:
        """Add `messages` to the outbox in an `AsyncSession`'s transaction."""
        if not isinstance(session, AsyncSession):
            hint = " (for a sync Session use bus.stage)" if isinstance(session, Session) else ""
            raise ConfigError(
                f"session= takes a SQLAlchemy AsyncSession, not {type(session).__name__}{hint}"
            )
        await stage(session, self.bus, messages)
        self._watch(session.sync_session)

    def stage_sync(self, session: Any, messages: Sequence[OutgoingMessage]) -> None:
        """Add `messages` to the outbox in a sync `Session`'s transaction."""
        if not isinstance(session, Session):
            hint = (
                " (for an AsyncSession use publish(..., session=))"
                if isinstance(session, AsyncSession)
                else ""
            )
            raise ConfigError(
                f"stage() takes a SQLAlchemy Session, not {type(session).__name__}{hint}"
            )
        stage_sync(session, self.bus, messages)
        self._watch(session)

    def _watch(self, session: Session) -> None:
        # Wake the relay when this session commits (once per session, however many stages).
        if not event.contains(session, "after_commit", self._committed):
            event.listen(session, "after_commit", self._committed)

    def _committed(self, _session: Session) -> None:
        if self._relay is not None:
            self._relay.wake()

    # -- the inbox -------------------------------------------------------------------------

    @property
    def inbox(self) -> InboxStore:
        """The transactions of transactional handlers (once started)."""
        if self._inbox is None:
            raise StateError("the inbox is not open: start the bus first")
        return self._inbox

    # -- inspecting ------------------------------------------------------------------------

    async def stats(self) -> OutboxStats:
        pending, dead, oldest = await self.store.stats()
        return OutboxStats(pending=pending, dead=dead, oldest_age=oldest)

    async def drain(self) -> int:
        """Send every due row now; return how many were sent (for `tidings.testing`)."""
        if self._relay is None:
            return 0
        return await self._relay.drain()
