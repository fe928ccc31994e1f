"""PostgreSQL ``LISTEN``: wake the relay when another process commits outbox rows.

A staging transaction runs ``pg_notify('tidings_outbox', <bus>)``, which PostgreSQL delivers
when (and only if) it commits. The listener holds one connection with ``LISTEN`` (asyncpg's
``add_listener``) and wakes the relay on each notification for its bus. Polling stays the
safety net: a lost connection is only slower until it is listening again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ._store import CHANNEL

__all__ = ["Listener"]

logger = logging.getLogger(__name__)


class Listener:
    """Listens for a bus's outbox notifications and calls `wake` for each.

    Args:
        engine: a PostgreSQL engine (asyncpg).
        bus: the bus name (the notifications' payload).
        wake: what to call on a notification (and once on each new connection, for what
            was committed while nobody listened).
        retry_every: seconds between two attempts to connect after a failure.
    """

    def __init__(
        self, engine: AsyncEngine, bus: str, wake: Callable[[], None], retry_every: float = 5.0
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.wake = wake
        self.retry_every = retry_every
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tidings-listen")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        warned = False
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not warned:
                    logger.warning(
                        "outbox of bus %r: cannot LISTEN on PostgreSQL (%s); the relay polls "
                        "until it can",
                        self.bus,
                        exc,
                    )
                    warned = True
            self.listening.clear()
            await asyncio.sleep(self.retry_every)

    async def _listen(self) -> None:
        lost = asyncio.Event()

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload == self.bus:
                self.wake()

        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            driver.add_termination_listener(lambda _conn: lost.set())
            await driver.add_listener(CHANNEL, notified)
            try:
                self.listening.set()
                self.wake()
                await lost.wait()
            finally:
                if not driver.is_closed():
                    with contextlib.suppress(Exception):
                        await driver.remove_listener(CHANNEL, notified)
