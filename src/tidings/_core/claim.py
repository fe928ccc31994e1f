"""The dedupe claim stage of idempotent groups: claim, renew while running, then complete.

Two copies of one event in flight at once run the handler once: the first claims the id in
the dedupe store; a copy that finds the claim live is postponed (no attempt counted) until
the claim settles, and is then a duplicate, or runs when the first copy failed. The claim
of a running handler is renewed every third of its lease, so a claim whose holder died (a
worker killed mid-handler) ends within one lease and the returning delivery runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import Counter
from collections.abc import Callable

from ..transports import DedupeStore
from .context import Context
from .middleware import Outcome
from .stages import Stage

__all__ = ["Claim"]

logger = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Claim(Stage):
    """Idempotent handlers: claim the event id before the handler runs, mark it done once
    the rest of the stack acknowledged it, release it when that failed.

    A copy whose id is done is a duplicate. A copy that finds a live claim (another copy in
    flight) is postponed, not counted as an attempt, until that claim settles. A store that
    cannot be reached postpones the delivery too, with a WARNING at most once a minute, so
    nothing stalls and no attempt is spent. Replays bypass the check (replaying asks to
    process again).

    Args:
        group: the group's name.
        store: the dedupe store.
        ttl: seconds a "done" marker lives.
        now: the bus clock's time.
        lease: seconds a claim lives without renewal (the bus's ``lease``).
    """

    busy_delay = 1.0
    """Seconds a copy waits before it looks at a live claim again."""
    down_delay = 5.0
    """Seconds a delivery waits when the dedupe store is down."""
    warn_every = 60.0

    def __init__(
        self,
        group: str,
        store: DedupeStore,
        ttl: float,
        now: Callable[[], float],
        lease: float = 30.0,
    ) -> None:
        self.group = group
        self.store = store
        self.ttl = ttl
        self.now = now
        self.lease = lease
        self._warned_at = -math.inf
        self._held: Counter[str] = Counter()
        self._renewer: asyncio.Task[None] | None = None

    async def __call__(self, ctx: Context) -> Outcome:
        handler = ctx._work.handler
        if handler is None or not handler.idempotent:
            return await self.next(ctx)
        if ctx.replayed:
            outcome = await self.next(ctx)
        else:
            try:
                state = await self.store.claim(self.group, ctx.event_id, self.lease)
            except Exception as exc:
                return self._store_down(exc)
            if state == "done":
                return Outcome.duplicate()
            if state == "busy":
                return Outcome.postpone(
                    self.busy_delay, "another delivery of this event is being processed"
                )
            self._hold(ctx.event_id)
            try:
                outcome = await self.next(ctx)
            finally:
                self._let_go(ctx.event_id)
        try:
            if outcome.kind == "ack":
                await self.store.complete(self.group, ctx.event_id, self.ttl)
            elif not ctx.replayed:
                await self.store.release(self.group, ctx.event_id)
        except Exception as exc:
            self._warn(exc, "its claim stays until its lease ends")
        return outcome

    def _hold(self, event_id: str) -> None:
        self._held[event_id] += 1
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_held())

    def _let_go(self, event_id: str) -> None:
        self._held[event_id] -= 1
        if self._held[event_id] <= 0:
            del self._held[event_id]

    async def _renew_held(self) -> None:
        """Renew the claims of the running handlers every third of a lease, until none is
        left (one task per stage, not one per delivery)."""
        while self._held:
            await asyncio.sleep(self.lease / 3)
            for event_id in list(self._held):
                try:
                    await self.store.renew(self.group, event_id, self.lease)
                except Exception as exc:
                    self._warn(exc, "a claim may end while its handler runs")

    def _store_down(self, exc: Exception) -> Outcome:
        self._warn(exc, f"deliveries wait and retry every {self.down_delay:g}s, uncounted")
        return Outcome.postpone(self.down_delay, f"dedupe store unavailable: {_describe(exc)}")

    def _warn(self, exc: Exception, consequence: str) -> None:
        now = self.now()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            logger.warning(
                "group %s: the dedupe store failed (%s); %s",
                self.group,
                _describe(exc),
                consequence,
            )

    async def close(self) -> None:
        """Stop renewing (the bus is stopping; unsettled claims end with their lease)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
