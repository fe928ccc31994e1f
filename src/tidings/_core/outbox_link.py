"""The bus's side of the outbox and inbox: the `tidings.outbox` machinery a bus with a
``database`` runs, imported only then (SQLAlchemy is an extra), and the checks that a bus
without one refuses what needs it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._clock import Clock
from .._exceptions import ConfigError
from ..outbox import OutboxStats
from ..outbox._settings import OutboxSettings
from ..transports import OutgoingMessage, Transport
from .stages import Transactions
from .subscription import Group

if TYPE_CHECKING:
    from ..outbox._outbox import Outbox
    from ..sagas._runner import Housekeeper

__all__ = ["OutboxLink"]


def _open(database: Any, bus: str, settings: OutboxSettings) -> Outbox:
    try:
        from ..outbox._outbox import Outbox
    except ImportError as exc:
        raise ConfigError(
            f"Bus(database=...) needs SQLAlchemy ({exc.name or exc} is missing): "
            "pip install 'tidings[sql]'"
        ) from exc
    return Outbox(database, bus=bus, settings=settings)


class OutboxLink:
    """The outbox of one bus, or its absence.

    Args:
        database: an async SQLAlchemy URL or `AsyncEngine`, or None (no outbox).
        bus: the bus name.
        settings: the outbox and inbox options.
        sagas_kept: seconds a completed saga instance is kept (``Bus(saga_retention=...)``).

    Attributes:
        sagas: the names of the sagas added to the bus (their old instances are deleted
            while it is open).
    """

    def __init__(
        self,
        database: Any,
        *,
        bus: str,
        settings: OutboxSettings,
        sagas_kept: float = 7 * 24 * 3600.0,
    ) -> None:
        if isinstance(sagas_kept, bool) or not (
            isinstance(sagas_kept, int | float) and sagas_kept > 0
        ):
            raise ConfigError(f"saga_retention must be positive seconds, not {sagas_kept!r}")
        self.bus = bus
        self.settings = settings
        self.sagas_kept = float(sagas_kept)
        self.sagas: list[str] = []
        self.outbox: Outbox | None = None if database is None else _open(database, bus, settings)
        self._housekeeper: Housekeeper | None = None

    def using(self, database: Any) -> OutboxLink:
        """The same settings (and sagas) on another database."""
        link = OutboxLink(
            database, bus=self.bus, settings=self.settings, sagas_kept=self.sagas_kept
        )
        link.sagas = list(self.sagas)
        return link

    def _need(self, what: str) -> Outbox:
        if self.outbox is None:
            raise ConfigError(f"{what} needs the application's database: Bus(database=...)")
        return self.outbox

    @property
    def transactions(self) -> Transactions | None:
        """What runs transactional handlers (the inbox of a started bus), or None."""
        return None if self.outbox is None else self.outbox.inbox

    @property
    def engine(self) -> Any:
        """The `AsyncEngine` of the database, or None."""
        return None if self.outbox is None else self.outbox.engine

    def check(self, groups: Iterable[Group]) -> None:
        """Refuse transactional handlers on a bus without a database."""
        if self.outbox is not None:
            return
        for group in groups:
            for handler in group.handlers:
                if handler.transactional:
                    raise ConfigError(
                        f"handler {handler.name} (group {group.name!r}) is transactional: "
                        "it needs the application's database, Bus(database=...)"
                    )

    async def start(self, transport: Transport, clock: Clock, on_unroutable: str) -> None:
        if self.outbox is None:
            return
        await self.outbox.start(transport, clock, on_unroutable)
        if self.sagas:
            from ..sagas._runner import Housekeeper

            engine, kept = self.outbox.engine, self.sagas_kept
            self._housekeeper = Housekeeper(engine, self.bus, kept, clock)
            self._housekeeper.start()

    async def close(self) -> None:
        if self._housekeeper is not None:
            await self._housekeeper.stop()
            self._housekeeper = None
        if self.outbox is not None:
            await self.outbox.close()

    async def sweep_sagas(self) -> int:
        """Delete the completed saga instances past their retention now (for tests)."""
        return 0 if self._housekeeper is None else await self._housekeeper.sweep()

    async def stage(self, session: object, messages: Sequence[OutgoingMessage]) -> None:
        """Stage `messages` in an `AsyncSession`'s transaction."""
        await self._need("publishing with session=").stage(session, messages)

    def stage_sync(self, session: object, message: OutgoingMessage) -> str:
        """Stage `message` in a sync `Session`'s transaction; return its id."""
        self._need("bus.stage()").stage_sync(session, [message])
        return message.id

    async def stats(self) -> OutboxStats:
        return await self._need("outbox_stats()").stats()

    async def drain(self) -> int:
        """Send every due row now (for `tidings.testing`); 0 without an outbox."""
        return 0 if self.outbox is None else await self.outbox.drain()
