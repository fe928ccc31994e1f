"""A consumer of one group on the memory broker: one task per delivery, at most
`concurrency` at a time, one at a time per key in an ordered group."""

from __future__ import annotations

import asyncio
import contextlib

from ..._clock import Clock
from .._message import Delivery
from .._transport import Consumer, Deliver
from ._broker import Entry, MemoryBroker, Queue, takeable

__all__ = ["MemoryConsumer"]


def _delivery(group: str, entry: Entry) -> Delivery:
    message = entry.message
    return Delivery(
        group=group,
        id=message.id,
        type=message.type,
        body=message.body,
        content_type=message.content_type,
        headers=dict(message.headers),
        key=message.key,
        attempt=entry.attempt,
        replayed=message.replayed,
        first_failed_at=entry.first_failed_at,
        handle=entry,
        reply_to=message.reply_to,
    )


class MemoryConsumer(Consumer):
    """Takes due entries of one queue and runs `deliver` for each in its own task."""

    def __init__(self, broker: MemoryBroker, queue: Queue, deliver: Deliver, clock: Clock) -> None:
        self._broker = broker
        self._queue = queue
        self._deliver = deliver
        self._clock = clock
        self._tasks: dict[asyncio.Task[None], Entry] = {}
        self._wake = broker.watch()
        self._stopping = False
        queue.consumers += 1
        self._loop_task = asyncio.create_task(self._run(), name=f"tidings-memory-{queue.spec.name}")

    def _claimable(self, now: float) -> list[Entry]:
        spec = self._queue.spec
        room = spec.concurrency - len(self._tasks)
        if room <= 0:
            return []
        out: list[Entry] = []
        blocked: set[str] = set()
        for entry in self._queue.entries:
            key = entry.message.key
            if spec.ordered and key is not None:
                if key in blocked:
                    continue
                blocked.add(key)
            if entry.leased or entry.available_at > now:
                continue
            out.append(entry)
            if len(out) >= room:
                break
        return out

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self._clock.time()
            for entry in self._claimable(now):
                entry.leased = True
                task = asyncio.create_task(self._deliver(_delivery(self._queue.spec.name, entry)))
                self._tasks[task] = entry
                task.add_done_callback(self._done)
            # Sleep until this group's next scheduled delivery (a retry, a delayed publish),
            # or until something changes.
            pending = min(
                (e.available_at for e in takeable(self._queue) if e.available_at > now),
                default=None,
            )
            if pending is not None:
                await self._clock.sleep_until(pending, self._wake)
            else:
                await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        entry = self._tasks.pop(task, None)
        if entry is not None and entry.leased and task.cancelled():
            # The callback never settled: the delivery returns to the group, attempt counted.
            entry.leased = False
            entry.attempt += 1
            self._broker.notify()
        self._wake.set()

    async def stop(self, timeout: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._queue.consumers -= 1
        self._broker.unwatch(self._wake)
        self._broker.notify()
