"""The dead-letter queue a ``tidings dlq`` command works on, and how the command ends.

The broker comes from ``--url``/``--app``/``TIDINGS_URL`` as for every inspecting command
(see `tidings._cli.connection`). With ``--app`` the application's bus also says when an
entry is poisoned (its ``poison_after``) and which handler a failure group's events went
to, whichever broker URL is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import Bus, DeadLetter, DeadLetters
from .connection import Broker, connect, inspected_broker
from .entry_ids import AmbiguousPrefix, resolve_entry_ids
from .errors import one_line_errors, run_async
from .target import load_bus

__all__ = ["DlqSession", "every_entry"]

T = TypeVar("T")

_PAGE = 500


async def every_entry(letters: DeadLetters) -> AsyncIterator[DeadLetter]:
    """Every entry of `letters`, oldest first, read a page at a time."""
    offset = 0
    while True:
        page = await letters.list(limit=_PAGE, offset=offset)
        for entry in page:
            yield entry
        offset += len(page)
        if len(page) < _PAGE:
            return


@dataclass(frozen=True, slots=True)
class DlqSession:
    """The broker of a ``tidings dlq`` command, and the ``--app`` bus when one is given.

    Attributes:
        broker: the broker the options name.
        app_bus: the application's bus (imported, never started), or None.
    """

    broker: Broker
    app_bus: Bus | None

    @classmethod
    def from_options(
        cls, app: str | None, url: str | None, name: str | None, management_url: str | None
    ) -> DlqSession:
        """The session of a command's ``--app``, ``--url``, ``--name`` and
        ``--management-url``; a bad one ends the command with one ``error:`` line."""
        broker = inspected_broker(app, url, name, management_url)
        app_bus = None
        if app:
            with one_line_errors([url, management_url]):
                app_bus = load_bus(app)  # imported already: the module is not run again
        return cls(broker, app_bus)

    def letters_of(self, bus: Bus, group: str) -> DeadLetters:
        """The dead letters of `group` on the open `bus`, with the ``--app`` bus's
        ``poison_after`` and handlers when there is one."""
        app_bus = self.app_bus
        if app_bus is None or app_bus is bus:
            return bus.dead_letters(group)
        return DeadLetters(
            bus.transport, group, bus.clock.time, app_bus.poison_after, app_bus.groups.get
        )

    @asynccontextmanager
    async def dead_letters(self, group: str) -> AsyncIterator[DeadLetters]:
        """`letters_of` `group` on a publish-only bus, open while the block runs."""
        async with connect(self.broker) as bus:
            yield self.letters_of(bus, group)

    def entry(self, group: str, given: str) -> DeadLetter:
        """The entry of `group` that `given` names (a whole id or a unique prefix); one that
        names none or several ends the command."""

        async def fetch() -> DeadLetter:
            async with self.dead_letters(group) as letters:
                [entry] = await resolve_entry_ids(letters, [given])
                return entry

        entry = self.run(fetch())
        assert entry is not None  # an interruption exits instead
        return entry

    def run(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """`run_async` with the broker's passwords masked; an ambiguous prefix (of an entry
        id or a failure signature) ends the command with status 2, naming the candidates."""
        try:
            return run_async(coro, urls=self.broker.secrets)
        except AmbiguousPrefix as exc:
            exc.exit()
