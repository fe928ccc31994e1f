"""Acknowledgements written together: every ack of one event-loop turn in one socket write.

``IncomingMessage.ack`` sends each ``basic.ack`` as its own write and waits for it to drain.
An ack needs no answer from the broker, so a consumer queues it here and goes on; a flush
task, started by the first ack of a burst, writes the acks queued meanwhile in one
`ChannelFrame` per channel.

Where it can, a flush says it in one frame: delivery tags are numbered 1, 2, 3... per
channel, so once every tag up to ``T`` is acknowledged, ``basic.ack(T, multiple=True)``
covers them all. ``T`` is always a tag acknowledged for the first time in that flush (the
broker refuses a tag it no longer holds, and ``multiple`` passes over the ones it already
let go); tags above the contiguous run go out one by one.

An ack for a channel that closed in between is dropped: the broker has already requeued
that delivery (at least once), exactly as when a single ack fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiormq.abc import ChannelFrame
from pamqp import commands as spec

__all__ = ["AckBatcher", "ChannelAcks"]

log = logging.getLogger("tidings.rabbitmq")


class ChannelAcks:
    """What has been acknowledged on one channel, to fold runs into ``multiple`` acks."""

    __slots__ = ("floor", "above")

    def __init__(self) -> None:
        self.floor = 0
        """Every tag up to this one is acknowledged (sent or about to be)."""
        self.above: set[int] = set()
        """Tags above `floor` acknowledged one by one already."""

    def frames(self, tags: list[int]) -> list[spec.Basic.Ack]:
        """The ack frames for `tags` (never acknowledged before), fewest possible."""
        fresh = set(tags)
        floor, above = self.floor, self.above
        while floor + 1 in fresh or floor + 1 in above:
            floor += 1
            above.discard(floor)
        frames: list[spec.Basic.Ack] = []
        covered = [t for t in fresh if t <= floor]
        if covered:
            frames.append(spec.Basic.Ack(delivery_tag=max(covered), multiple=True))
        for tag in sorted(t for t in fresh if t > floor):
            frames.append(spec.Basic.Ack(delivery_tag=tag))
            above.add(tag)
        self.floor = floor
        return frames


class AckBatcher:
    """Queues acks per aiormq channel and writes each burst in one go."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._queued: list[tuple[Any, int]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._state: dict[Any, ChannelAcks] = {}

    def ack(self, channel: Any, delivery_tag: int) -> None:
        """Queue an ack of `delivery_tag` on `channel` (the aiormq channel it came on)."""
        self._queued.append((channel, delivery_tag))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def flush(self) -> None:
        """Wait until every ack queued so far is handed to the connection."""
        while self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._queued:
                queued, self._queued = self._queued, []
                by_channel: dict[Any, list[int]] = {}
                for channel, tag in queued:
                    by_channel.setdefault(channel, []).append(tag)
                for channel, tags in by_channel.items():
                    await self._write(channel, tags)
        finally:
            self._flusher = None

    async def _write(self, channel: Any, tags: list[int]) -> None:
        # Forget channels that closed: a reopened channel numbers its deliveries from 1.
        for old in [c for c in self._state if c.is_closed]:
            del self._state[old]
        if channel.is_closed:
            log.info(
                "%d acknowledgements of %s not sent: their channel closed, so the broker "
                "delivers those messages again",
                len(tags),
                self._owner,
            )
            return
        state = self._state.get(channel)
        if state is None:
            state = self._state[channel] = ChannelAcks()
        frame = ChannelFrame.marshall(channel_number=channel.number, frames=state.frames(tags))
        try:
            await channel.write_queue.put(frame)
        except Exception as exc:
            log.warning(
                "could not acknowledge %d deliveries of %s: %s", len(tags), self._owner, exc
            )
