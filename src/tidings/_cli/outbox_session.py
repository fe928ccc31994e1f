"""The outbox a ``tidings outbox`` command works on: the ``database`` of the application's bus
(``--app MODULE:bus``, imported, never started), under that bus's name.

Dead messages are named by their event id, whole or as a unique prefix of at least
`MIN_PREFIX` characters: a prefix that starts the ids of several messages ends the command
with status 2, listing them; one that starts none is one ``error:`` line (status 1).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import typer

from .. import Bus, ConfigError, TidingsError
from .entry_ids import MIN_PREFIX
from .errors import one_line_errors, run_async
from .target import load_bus

if TYPE_CHECKING:
    from ..outbox._admin import Entry, OutboxAdmin

__all__ = ["AmbiguousMessage", "OutboxSession", "admin_of"]

T = TypeVar("T")

_SHOWN = 10  # candidates listed for an ambiguous prefix


class AmbiguousMessage(Exception):
    """An id prefix that starts the event ids of several dead messages."""

    def __init__(self, prefix: str, bus: str, matches: list[str]) -> None:
        super().__init__(prefix)
        self.prefix, self.bus, self.matches = prefix, bus, matches

    def exit(self) -> NoReturn:
        """Say so in one line, naming the candidates, and exit with status 2 (usage)."""
        shown = ", ".join(self.matches[:_SHOWN])
        more = f" and {len(self.matches) - _SHOWN} more" if len(self.matches) > _SHOWN else ""
        typer.echo(
            f"error: {self.prefix!r} is the start of {len(self.matches)} dead messages in the "
            f"outbox of bus {self.bus!r}: {shown}{more}; give more of the id",
            err=True,
        )
        raise typer.Exit(2)


def admin_of(bus: Bus, where: str) -> OutboxAdmin:
    """The outbox of `bus` (loaded from `where`), read without starting the bus.

    Raises:
        ConfigError: the bus has no ``database``.
    """
    engine = bus.database
    if engine is None:
        raise ConfigError(
            f"bus {bus.name!r} ({where}) has no outbox: give it the application's database, "
            "Bus(database=...)"
        )
    # Here, not at the top: SQLAlchemy is an extra, which a bus with a database has.
    from ..outbox._admin import OutboxAdmin

    return OutboxAdmin(engine, bus.name, bus.clock)


@dataclass(frozen=True, slots=True)
class OutboxSession:
    """The ``--app`` of a ``tidings outbox`` command: its bus and that bus's outbox.

    Attributes:
        target: the ``--app`` target as given.
        bus: the application's bus (imported, never started).
        admin: its outbox.
    """

    target: str
    bus: Bus
    admin: OutboxAdmin

    @classmethod
    def load(cls, target: str) -> OutboxSession:
        """The session of ``--app TARGET``; a bad target, or a bus without a database, ends
        the command with one ``error:`` line."""
        with one_line_errors():
            bus = load_bus(target)
            return cls(target, bus, admin_of(bus, target))

    @property
    def name(self) -> str:
        return self.bus.name

    def run(self, work: Callable[[OutboxAdmin], Coroutine[Any, Any, T]]) -> T:
        """Run ``work(admin)``, then close the database's connections; errors are one
        ``error:`` line (status 1), an ambiguous prefix exits 2, Ctrl-C 130."""

        async def go() -> T:
            try:
                return await work(self.admin)
            finally:
                await self.admin.close()

        try:
            # Not interrupt_ok: Ctrl-C exits 130, so the result is what `work` returned.
            return cast(T, run_async(go(), urls=[self.admin.describe()]))
        except AmbiguousMessage as exc:
            exc.exit()

    async def rows(self, admin: OutboxAdmin, given: Sequence[str] | None) -> list[int] | None:
        """The rows of the dead messages `given` names (see `resolve`); None (all of them)
        when `given` is None."""
        if given is None:
            return None
        return [entry.row for entry in await self.resolve(admin, given)]

    async def resolve(self, admin: OutboxAdmin, given: Sequence[str]) -> list[Entry]:
        """The dead rows `given` names (whole event ids or unique prefixes of them), in the
        order given; several rows share an id when one event was staged more than once.

        Raises:
            TidingsError: an id that is no dead message's id nor the start of one.
            AmbiguousMessage: a prefix that starts the ids of several dead messages.
        """
        found: dict[int, Entry] = {}
        hint = f"see tidings outbox list --dead --app {self.target}"
        for wanted in given:
            rows = await admin.find_dead(wanted, prefix=False)
            if not rows:
                if len(wanted) < MIN_PREFIX:
                    raise TidingsError(
                        f"no dead message {wanted!r} in the outbox of bus {self.name!r} (give "
                        f"the whole event id, or at least {MIN_PREFIX} characters of it; {hint})"
                    )
                rows = await admin.find_dead(wanted, prefix=True)
                ids = list(dict.fromkeys(r.event_id for r in rows))
                if not ids:
                    raise TidingsError(
                        f"no dead message {wanted!r} in the outbox of bus {self.name!r} ({hint})"
                    )
                if len(ids) > 1:
                    raise AmbiguousMessage(wanted, self.name, ids)
            for row in rows:
                found.setdefault(row.row, row)
        return list(found.values())
