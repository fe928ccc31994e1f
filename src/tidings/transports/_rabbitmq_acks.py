"""Acknowledgements written together: every ack of one event-loop turn in one socket write.

``IncomingMessage.ack`` sends each ``basic.ack`` as its own write and waits for it to drain.
An ack needs no answer from the broker, so a consumer queues it here and goes on; a flush
task, started by the first ack of a burst, writes the acks queued meanwhile as one
`ChannelFrame` per channel. An ack for a channel that closed in between is dropped: the broker
has already requeued that delivery (at least once), exactly as when a single ack fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiormq.abc import ChannelFrame
from pamqp import commands as spec

__all__ = ["AckBatcher"]

log = logging.getLogger("tidings.rabbitmq")


class AckBatcher:
    """Queues ``basic.ack`` frames per aiormq channel and writes each burst in one go."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._queued: list[tuple[Any, int]] = []
        self._flusher: asyncio.Task[None] | None = None

    def ack(self, channel: Any, delivery_tag: int) -> None:
        """Queue an ack of `delivery_tag` on `channel` (the aiormq channel it came on)."""
        self._queued.append((channel, delivery_tag))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def flush(self) -> None:
        """Wait until every ack queued so far is handed to the connection."""
        while self._flusher is not None:
            flusher = self._flusher
            with contextlib.suppress(Exception):
                await asyncio.shield(flusher)

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
        if channel.is_closed:
            log.info(
                "%d acknowledgements of %s not sent: their channel closed, so the broker "
                "delivers those messages again",
                len(tags),
                self._owner,
            )
            return
        frame = ChannelFrame.marshall(
            channel_number=channel.number,
            frames=[spec.Basic.Ack(delivery_tag=tag) for tag in tags],
        )
        try:
            await channel.write_queue.put(frame)
        except Exception as exc:
            log.warning(
                "could not acknowledge %d deliveries of %s: %s", len(tags), self._owner, exc
            )
