"""Acknowledgements written together: the acks of a burst (`GATHER_FOR`) in one go.

``IncomingMessage.ack`` sends each ``basic.ack`` as its own write and waits for it to drain.
An ack needs no answer from the broker, so a consumer queues it here and goes on; a flush
task, started by the first ack of a burst, waits `GATHER_FOR` (unless `GATHER_UP_TO` are
queued already) and hands the acks queued meanwhile to `send_acks`, once per channel (one
write of folded acks where aiormq allows it: see `_aiormq`).

An ack for a channel that closed in between is dropped: the broker has already requeued
that delivery (at least once), exactly as when a single ack fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ._aiormq import ChannelAcks, send_acks

__all__ = ["AckBatcher"]

logger = logging.getLogger(__name__)

GATHER_FOR = 0.002
"""Seconds the first ack of a burst waits for others before the burst is written (the broker
holds those deliveries as unacknowledged that much longer; prefetch bounds how many)."""
GATHER_UP_TO = 64
"""Acks queued at which they are written without waiting."""


class AckBatcher:
    """Queues acks per aiormq channel and sends each burst together."""

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
            if len(self._queued) < GATHER_UP_TO:
                # Acks trickle in a few per event-loop turn while a busy consumer's handlers
                # finish; gathering them a moment cuts the writes several-fold.
                await asyncio.sleep(GATHER_FOR)
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
            logger.info(
                "%d acknowledgements of %s not sent: their channel closed, so the broker "
                "delivers those messages again",
                len(tags),
                self._owner,
            )
            return
        state = self._state.get(channel)
        if state is None:
            state = self._state[channel] = ChannelAcks()
        try:
            await send_acks(channel, state, tags)
        except Exception as exc:
            logger.warning(
                "could not acknowledge %d deliveries of %s: %s", len(tags), self._owner, exc
            )
