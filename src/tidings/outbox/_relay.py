"""The relay: sends the committed rows of one bus's outbox to the broker.

A pass claims due rows with a lease (see `OutboxStore.claim`, which keeps per-key order),
publishes them in one transport call, and marks them sent only once the broker confirmed
them; a relay that dies in between leaves them leased, and when the lease ends another pass
sends them again (consumers with an inbox, or ``idempotent=True``, absorb the copy).

- A broker that is down: the rows go back as they were and the relay waits, doubling the
  wait up to `MAX_DOWN_WAIT`; nothing is counted against the rows.
- A full group (`QueueFull`): the rows are published one by one, so rows for other groups
  go on; a refused row waits `FULL_WAIT` seconds, uncounted, holding back its key.
- An unroutable row becomes dead at once (unless the bus ignores unroutable publishes).
- Any other error counts a failed attempt and backs the row off (exponentially); after
  ``attempts`` it becomes dead. A dead row never holds back the later rows of its key.
- A database that refuses (down, or a SQLite file another writer keeps busy past its busy
  timeout): the pass stops, with one warning, and the relay tries again. Marking confirmed
  rows sent is tried `MARK_TRIES` times, since rows left unmarked are sent again when
  their lease ends.

Between passes the relay waits for a wake-up (a commit in this process, a PostgreSQL
notification) or the poll interval, and now and then deletes old sent rows and expired inbox
rows in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import uuid

from sqlalchemy.exc import DBAPIError

from .._exceptions import BrokerUnavailable, QueueFull
from ..transports import CAP_ATOMIC_BATCH, Transport
from ._settings import OutboxSettings
from ._store import OutboxRow, OutboxStore

__all__ = ["Relay"]

logger = logging.getLogger(__name__)

FULL_WAIT = 1.0
"""Seconds a row refused by a full group waits before the next try."""
MAX_DOWN_WAIT = 5.0
"""Longest wait between two tries while the broker is down."""
MAX_BACK_OFF = 60.0
"""Longest back-off of a row that failed."""
MARK_TRIES = 3
"""Tries to mark confirmed rows sent while the database refuses the write."""


class _BrokerDown(Exception):
    """The broker was unavailable during a pass (the rows went back unsent)."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Relay:
    """Publishes one bus's outbox rows through its transport.

    Args:
        store: the bus's rows.
        transport: the open transport to publish with.
        settings: the bus's outbox settings.
        on_unroutable: the bus's setting: ``"ignore"`` counts an unroutable row as sent.
    """

    cleanup_every = 60.0
    """Seconds between two deletions of old sent rows and expired inbox rows."""

    def __init__(
        self,
        store: OutboxStore,
        transport: Transport,
        settings: OutboxSettings,
        *,
        on_unroutable: str,
    ) -> None:
        self.store = store
        self.transport = transport
        self.settings = settings
        self.on_unroutable = on_unroutable
        self.clock = store.clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._cleaned_at = -math.inf
        self._down = 0
        self._refused = 0
        self._rng = random.Random()

    @property
    def atomic(self) -> bool:
        """True when a publish call holding an unroutable message stores none of it."""
        return CAP_ATOMIC_BATCH in self.transport.capabilities and self.on_unroutable == "error"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="tidings-relay")

    async def stop(self) -> None:
        """Stop after the pass under way (its rows are settled or given back)."""
        task, self._task = self._task, None
        if task is None:
            return
        async with self._lock:  # let a pass under way finish
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def wake(self) -> None:
        """Look at the outbox now (thread-safe: a sync session may commit in a thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._wake.set)

    async def drain(self) -> int:
        """Send every due row now (after the pass under way); return how many were sent."""
        async with self._lock:
            return await self._pass()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                async with self._lock:
                    await self._pass()
                if self._down:
                    logger.info("outbox of bus %r: the broker is back", self.store.bus)
                self._down = 0
                await self._cleanup()
                self._refused = 0
                wait, wake = self.settings.poll, self._wake
            except asyncio.CancelledError:
                raise
            except _BrokerDown as exc:
                if not self._down:
                    logger.warning(
                        "outbox of bus %r: the broker is unavailable (%s); rows wait, and "
                        "the relay tries again",
                        self.store.bus,
                        exc,
                    )
                wait = min(MAX_DOWN_WAIT, 0.1 * 2**self._down)
                self._down += 1
                wake = asyncio.Event()  # commits do not hurry a broker that is down
            except (DBAPIError, OSError) as exc:
                if not self._refused:
                    logger.warning(
                        "outbox of bus %r: the database refused (%s); the relay tries again",
                        self.store.bus,
                        " ".join(str(getattr(exc, "orig", None) or exc).split()),
                    )
                wait = min(self.settings.poll, 0.1 * 2**self._refused)
                self._refused += 1
                wake = self._wake
            except Exception:
                logger.exception("outbox of bus %r: relay pass failed", self.store.bus)
                wait, wake = self.settings.poll, self._wake
            await self._sleep(wait, wake)

    async def _sleep(self, wait: float, wake: asyncio.Event) -> None:
        """Wait `wait` seconds, or until `wake` is set. The event of a broker that is down is
        the relay's own: nothing but the clock sets it (a test's clock, on each move), and
        the wait goes on until its end, so the back-off holds on every clock."""
        deadline = self.clock.time() + wait
        await self.clock.sleep_until(deadline, wake)
        while wake is not self._wake and self.clock.time() < deadline:
            wake.clear()
            await self.clock.sleep_until(deadline, wake)

    async def _cleanup(self) -> None:
        now = self.clock.time()
        if now - self._cleaned_at < self.cleanup_every:
            return
        self._cleaned_at = now
        sent = await self.store.delete_sent(self.settings.retention)
        seen = await self.store.delete_inbox(self.settings.inbox_ttl)
        if sent or seen:
            logger.debug(
                "outbox of bus %r: deleted %d sent, %d inbox rows", self.store.bus, sent, seen
            )

    # -- a pass ----------------------------------------------------------------------------

    async def _pass(self) -> int:
        sent = 0
        while True:
            rows = await self.store.claim(self.owner, self.settings.batch, self.settings.lease)
            if not rows:
                return sent
            sent += await self._publish(rows)

    async def _publish(self, rows: list[OutboxRow]) -> int:
        now = self.clock.time()
        try:
            routed = await self.transport.publish([r.message(now) for r in rows])
        except BrokerUnavailable as exc:
            await self.store.release([r.id for r in rows])
            raise _BrokerDown(_describe(exc)) from exc
        except asyncio.CancelledError:
            await asyncio.shield(self.store.release([r.id for r in rows]))
            raise
        except Exception as exc:
            if len(rows) > 1:
                return await self._publish_each(rows)
            await self._failed(rows[0], exc)
            return 0
        return await self._settle(rows, routed)

    async def _publish_each(self, rows: list[OutboxRow]) -> int:
        """One row at a time (after a batch failed), so rows of other keys and for other
        groups go on; a row that fails holds back the later rows of its key."""
        held: set[str] = set()
        sent = 0
        for i, row in enumerate(rows):
            if row.key is not None and row.key in held:
                await self.store.release([row.id])
                continue
            try:
                routed = await self.transport.publish([row.message(self.clock.time())])
            except BrokerUnavailable as exc:
                await self.store.release([r.id for r in rows[i:]])
                raise _BrokerDown(_describe(exc)) from exc
            except asyncio.CancelledError:
                await asyncio.shield(self.store.release([r.id for r in rows[i:]]))
                raise
            except Exception as exc:
                if not await self._failed(row, exc) and row.key is not None:
                    held.add(row.key)
            else:
                sent += await self._settle([row], routed)
        return sent

    async def _failed(self, row: OutboxRow, exc: Exception) -> bool:
        """Back `row` off after `exc`, or make it dead; return True when it is dead."""
        error = _describe(exc)
        if isinstance(exc, QueueFull):
            await self.store.back_off([row.id], FULL_WAIT, error, count=False)
            return False
        attempts = row.attempts + 1
        if attempts >= self.settings.attempts:
            await self._dead(row, f"failed {attempts} publishes: {error}")
            return True
        delay = min(MAX_BACK_OFF, 0.5 * 2**row.attempts) * self._rng.uniform(0.5, 1.0)
        logger.warning(
            "outbox of bus %r: publishing %s %s failed (%d of %d), trying again in %.1fs: %s",
            self.store.bus,
            row.type,
            row.event_id,
            attempts,
            self.settings.attempts,
            delay,
            error,
        )
        await self.store.back_off([row.id], delay, error, count=True)
        return False

    async def _settle(self, rows: list[OutboxRow], routed: list[bool]) -> int:
        """Mark confirmed rows sent; unroutable ones dead. On an atomic transport a call
        holding an unroutable row stored none of it: the others go back, to be sent again."""
        if all(routed) or self.on_unroutable != "error":
            await self._mark_sent([r.id for r in rows])
            return len(rows)
        for row, ok in zip(rows, routed, strict=True):
            if not ok:
                await self._dead(
                    row,
                    f"unroutable: no group named {row.group!r}"
                    if row.group is not None
                    else f"unroutable: no group subscribes to {row.type!r}",
                )
        kept = [r.id for r, ok in zip(rows, routed, strict=True) if ok]
        if self.atomic:
            await self.store.release(kept)
            return 0
        await self._mark_sent(kept)
        return len(kept)

    async def _mark_sent(self, ids: list[int]) -> None:
        """Mark confirmed rows sent, trying again while the database refuses the write."""
        for attempt in range(MARK_TRIES):
            try:
                await self.store.sent(ids)
                return
            except DBAPIError:
                if attempt == MARK_TRIES - 1:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)

    async def _dead(self, row: OutboxRow, reason: str) -> None:
        logger.error(
            "outbox of bus %r: %s %s is dead: %s", self.store.bus, row.type, row.event_id, reason
        )
        await self.store.dead([row.id], reason)
