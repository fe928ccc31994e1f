"""One channel of a consumer: the queues it consumes, with at most `prefetch` unsettled.

An unordered group has one lane over its queue (and its returns lane, when bounded); an
ordered group has one lane per partition, with a prefetch of one, so a partition is a serial
lane of work: what its single active consumer holds is the partition's head.

`give_back` is how an ordered retry is counted by the broker: it closes the lane's channel,
and RabbitMQ returns the unsettled message to the *head* of its quorum queue, adding one to
its ``x-delivery-count`` (a ``basic.nack`` with requeue would put it at the back of a quorum
queue on RabbitMQ 3.10, behind the later events of its key; ``basic.recover`` too), then
consumes again. A worker that dies while the message waits has the same effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from ._acks import AckBatcher
from ._aiormq import consume

__all__ = ["Lane", "OnMessage"]

logger = logging.getLogger(__name__)

OnMessage = Callable[["Lane", DeliveredMessage], Coroutine[Any, Any, None]]
"""Called with the lane and each message it receives."""

REOPEN_EVERY = 1.0
"""Seconds between two attempts to consume again after `give_back` could not."""


class Lane:
    """A channel consuming `queues`, at most `prefetch` unsettled deliveries on it.

    Args:
        queues: the queues it consumes (which must exist).
        prefetch: the channel's QoS (per consumer: quorum queues refuse a global one).
        connection: the transport's connection, to open the channel on.
        on_message: called with each message received.
        acks: the consumer's queued acks (flushed before the channel closes).
        owner: the group's name, for log lines.

    Attributes:
        first_failed: (message id, first failure time) of the message given back last, so
            the delivery that brings it back keeps its first failure time.
    """

    def __init__(
        self,
        queues: list[str],
        prefetch: int,
        *,
        connection: Callable[[], AbstractRobustConnection],
        on_message: OnMessage,
        acks: AckBatcher,
        owner: str,
    ) -> None:
        self.queues = queues
        self.prefetch = prefetch
        self._connection = connection
        self._on_message = on_message
        self._acks = acks
        self._owner = owner
        self._channel: AbstractRobustChannel | None = None
        self._tags: list[str] = []
        self._closed = False
        self.first_failed: tuple[str | None, float] | None = None

    async def open(self) -> None:
        channel = await self._connection().channel()
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        await channel.set_qos(prefetch_count=self.prefetch)
        # Consumed with aiormq's ``basic_consume`` (no aio-pika message object per delivery);
        # after a reconnect the robust channel reopens with its QoS and we consume again.
        await self._attach()
        channel.reopen_callbacks.add(self._reattach)

    async def _attach(self) -> None:
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        on_message = partial(self._on_message, self)
        self._tags = [await consume(underlay, name, on_message) for name in self.queues]

    async def _reattach(self, *_: Any) -> None:
        if self._closed:
            return
        try:
            await self._attach()
        except Exception as exc:
            logger.error("could not consume %s again after a reconnect: %s", self._owner, exc)
        else:
            logger.info("consuming %s again after a reconnect", self._owner)

    async def underlay(self) -> Any:
        """The aiormq channel (to publish on, in confirm mode)."""
        assert self._channel is not None
        return await self._channel.get_underlay_channel()

    async def cancel(self) -> None:
        """Stop receiving (what it holds stays unsettled until acked or closed)."""
        self._closed = True
        if self._channel is None:
            return
        self._channel.reopen_callbacks.discard(self._reattach)
        with contextlib.suppress(Exception):
            underlay = await self._channel.get_underlay_channel()
            for tag in self._tags:
                await underlay.basic_cancel(tag)

    async def close(self) -> None:
        """Close the channel: the broker returns whatever is unsettled on it."""
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.reopen_callbacks.discard(self._reattach)
            with contextlib.suppress(Exception):
                await channel.close()

    async def give_back(self) -> None:
        """Return what the lane holds to the head of its queue (counted by a quorum queue)
        and consume again; another worker's standby consumer may take over meanwhile."""
        if self._closed:
            return
        # Queued acks of earlier messages go first: closing would return those too.
        await self._acks.flush()
        await self._drop()
        while not self._closed:
            try:
                await self.open()
            except Exception as exc:
                logger.warning(
                    "could not consume %s again (%s); trying again in %gs",
                    self._owner,
                    exc,
                    REOPEN_EVERY,
                )
                await self._drop()
                await asyncio.sleep(REOPEN_EVERY)
                continue
            if self._closed:  # stopped meanwhile
                await self._drop()
            return
