"""`SagaRunner`: one saga's transitions in the transactions of its group's handlers, and the
deletion of its old completed instances.

The bus runs each step as a transactional handler: the inbox stage opened a transaction
holding the event's inbox row; the runner loads the instance in it, computes the transition
and saves it with optimistic concurrency. A transition that lost a race (another event of
the instance committed in between) wrote nothing and is computed again at once from the new
row, up to `CONFLICT_TRIES` times with a growing random pause; then the ``conflict`` verdict
asks for the delivery to be tried again later (not counted as a failed attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .._clock import Clock
from .._exceptions import Permanent
from ._definition import SagaDefinition, Step
from ._store import SagaStore, after_commit
from ._transition import Transition, transition

__all__ = ["CONFLICT_TRIES", "Housekeeper", "SagaRunner"]

logger = logging.getLogger(__name__)

CONFLICT_TRIES = 10
"""Transitions tried at once for one delivery before it is postponed."""


class SagaRunner:
    """Runs the steps of one saga.

    Args:
        definition: the saga.
        bus: the bus name.
        now: the bus's clock (epoch seconds).
    """

    def __init__(self, definition: SagaDefinition, *, bus: str, now: Callable[[], float]) -> None:
        self.definition = definition
        self.bus = bus
        self.now = now
        self._rng = random.Random()

    async def run(
        self,
        session: AsyncSession,
        step: Step,
        event: Any,
        *,
        event_type: str,
        event_id: str,
        key: str | None,
        token: str | None,
    ) -> Transition:
        """Apply `event` to its instance in `session`'s transaction and save the result.

        `key` is the delivery's key, used for a timeout (`token` set); other events find
        their key with the step's key function.

        Raises:
            Permanent: the key function failed (the event cannot concern any instance).
        """
        if token is None or not key:
            try:
                key = step.key_of(event)
            except Exception as exc:
                raise Permanent(
                    f"saga {self.definition.name!r}: no instance key in {event_type!r} "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
        name = self.definition.name
        store = SagaStore(self.bus, postgres=session.get_bind().dialect.name == "postgresql")
        for attempt in range(CONFLICT_TRIES):
            instance = await store.load(session, name, key)
            done = await transition(
                self.definition,
                step,
                instance,
                event,
                event_type=event_type,
                event_id=event_id,
                key=key,
                token=token,
                now=self.now(),
            )
            if done.instance is None or await store.save(session, name, done.instance):
                return done
            # Lost to another transition of this instance: try again from its row, after a
            # random pause that grows, so a crowd of events for one instance spreads out.
            logger.debug("saga %s %r: conflict %d, trying again", name, key, attempt + 1)
            await asyncio.sleep(self._rng.uniform(0, 0.002 * 2**attempt))
        reason = f"saga {name!r} {key!r} changed under {CONFLICT_TRIES} tries of {event_type!r}"
        return Transition("conflict", key, reason)

    def after_commit(self, session: AsyncSession, callback: Callable[[], None]) -> None:
        """Call `callback` once `session`'s transaction commits."""
        after_commit(session, callback)


class Housekeeper:
    """Deletes a bus's completed saga instances once they are older than `retention`.

    Args:
        engine: the application's database.
        bus: the bus name.
        retention: seconds a completed instance is kept.
        clock: the bus's clock.
        every: seconds between two deletions.
    """

    def __init__(
        self, engine: AsyncEngine, bus: str, retention: float, clock: Clock, every: float = 60.0
    ) -> None:
        self.store = SagaStore(bus, postgres=engine.dialect.name == "postgresql")
        self.engine = engine
        self.retention = retention
        self.clock = clock
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tidings-sagas")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> int:
        """Delete the instances completed more than `retention` seconds ago; how many."""
        return await self.store.delete_completed(self.engine, self.clock.time() - self.retention)

    async def _run(self) -> None:
        while True:
            # The next sweep is due `every` seconds after this one began, so a clock that
            # moved on during the sweep (a test's) is not missed.
            due = self.clock.time() + self.every
            try:
                deleted = await self.sweep()
                if deleted:
                    logger.debug("bus %r: deleted %d completed sagas", self.store.bus, deleted)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("bus %r: deleting old sagas failed", self.store.bus, exc_info=True)
            await self.clock.sleep_until(due, asyncio.Event())
