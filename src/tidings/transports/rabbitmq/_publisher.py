"""Pipelined publishing on one confirm channel: a burst of publishes leaves in one write.

aiormq sends every ``basic_publish`` as its own socket write and holds the channel lock until
that write has drained, so publishes from concurrent tasks leave one system call each. Here a
publish is only queued; a flush task, started by the first publish of a burst, runs once the
tasks ready in the same event-loop turn have queued theirs, numbers the whole batch with
consecutive delivery tags, registers one confirmation future per message with the channel
(so returns, nacks and a closed channel reach them exactly as they reach aiormq's own
publishes) and writes all their frames in one `ChannelFrame`. Publishes queued while a batch
is being written go in the next one, so a busy publisher batches more, an idle one adds no
delay.

This uses the channel's publishing state (``lock``, ``delivery_tag``, ``confirmations``,
``message_id_delivery_tag``, ``write_queue``) the way ``aiormq.Channel.basic_publish`` does;
`supported` checks those are there, and the transport falls back to ``basic_publish``
otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from .._futures import relay

__all__ = ["BatchPublisher", "Outbound", "supported"]

Outbound = tuple[str, str, bytes, spec.Basic.Properties]
"""One message to publish: (exchange, routing key, body, properties)."""

MAX_BATCH_BYTES = 1 << 20
"""A flush writes at most about this many body bytes per `ChannelFrame` (a large batch is cut
into several writes, so a burst of big messages is not copied into one huge buffer)."""

_STATE = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue")


def supported(channel: Any) -> bool:
    """Whether `channel` (an aiormq channel) has the publishing state this module uses."""
    return all(hasattr(channel, name) for name in _STATE) and hasattr(channel, "create_future")


@dataclass(slots=True, eq=False)
class _Queued:
    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    outcome: asyncio.Future[Any]


def _chunks(queued: list[_Queued]) -> list[list[_Queued]]:
    """`queued` cut into batches of about `MAX_BATCH_BYTES` of bodies each."""
    batches: list[list[_Queued]] = [[]]
    size = 0
    for item in queued:
        if size >= MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += len(item.body)
    return batches


def _forget(channel: Any, message_id: str, tag: int) -> None:
    """Drop the message id -> delivery tag entry aiormq uses to match returns."""
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id, None)


def _answered(
    channel: Any,
    message_id: str,
    tag: int,
    outcome: asyncio.Future[Any],
    confirmation: asyncio.Future[Any],
) -> None:
    """The broker answered one publish: forget its id, tell its publisher."""
    _forget(channel, message_id, tag)
    relay(confirmation, outcome)


class BatchPublisher:
    """Queues publishes and writes each burst in one go; see the module docstring."""

    def __init__(self, underlay: Callable[[], Awaitable[Any]]) -> None:
        self._underlay = underlay
        self._queue: list[_Queued] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit(
        self, exchange: str, routing_key: str, body: bytes, properties: spec.Basic.Properties
    ) -> asyncio.Future[Any]:
        """Queue one mandatory publish. The future resolves with the broker's ``Basic.Ack``;
        it fails with aiormq's ``PublishError`` (returned: unroutable), ``DeliveryError``
        (nacked) or the error that closed the channel."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Queued(exchange, routing_key, body, properties, outcome))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return outcome

    async def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            await asyncio.wait([flusher])  # never raises: the flusher's own end is expected
        self._fail(self._queue, aiormq.exceptions.ChannelInvalidStateError("publisher closed"))
        self._queue = []

    async def _flush(self) -> None:
        try:
            while self._queue:
                queued, self._queue = self._queue, []
                for batch in _chunks(queued):
                    try:
                        await self._write(batch)
                    except BaseException as exc:
                        self._fail(batch, exc)
                        if isinstance(exc, asyncio.CancelledError):
                            self._fail(queued, exc)
                            raise
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None
            if self._queue and self._flusher is None:
                # Queued while the last write failed or was cancelled: give them their turn.
                with contextlib.suppress(RuntimeError):
                    self._flusher = asyncio.get_running_loop().create_task(self._flush())

    @staticmethod
    def _fail(batch: list[_Queued], exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            exc = aiormq.exceptions.ChannelInvalidStateError("the publisher was closed")
        for item in batch:
            if not item.outcome.done():
                item.outcome.set_exception(exc)

    async def _write(self, batch: list[_Queued]) -> None:
        channel = await self._underlay()
        if not supported(channel):
            await self._write_one_by_one(channel, batch)
            return
        async with channel.lock:
            if channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
            frames: list[Any] = []
            registered: list[tuple[int, str]] = []
            limit = channel.max_content_size
            for item in batch:
                if item.outcome.done():
                    continue  # its publisher was cancelled before it was sent
                properties = item.properties
                if not properties.message_id:
                    # aiormq matches a returned message to its publish by message id.
                    properties.message_id = uuid.uuid4().hex
                channel.delivery_tag += 1
                tag = channel.delivery_tag
                confirmation = channel.create_future()
                channel.confirmations[tag] = confirmation
                channel.message_id_delivery_tag[properties.message_id] = tag
                registered.append((tag, properties.message_id))
                confirmation.add_done_callback(
                    partial(_answered, channel, properties.message_id, tag, item.outcome)
                )
                body = item.body
                frames.append(
                    spec.Basic.Publish(
                        exchange=item.exchange, routing_key=item.routing_key, mandatory=True
                    )
                )
                frames.append(ContentHeader(properties=properties, body_size=len(body)))
                if len(body) < limit:
                    frames.append(ContentBody(body))
                elif body:
                    view = memoryview(body)
                    frames.extend(
                        ContentBody(bytes(view[i : i + limit])) for i in range(0, len(body), limit)
                    )
            if not frames:
                return
            drained = channel.create_future()
            try:
                await channel.write_queue.put(
                    ChannelFrame.marshall(
                        channel_number=channel.number, frames=frames, drain_future=drained
                    )
                )
            except BaseException:
                # Never handed to the writer: the broker has not seen these tags.
                for tag, message_id in reversed(registered):
                    confirmation = channel.confirmations.pop(tag, None)
                    if confirmation is not None:
                        confirmation.cancel()
                    _forget(channel, message_id, tag)
                channel.delivery_tag -= len(registered)
                drained.cancel()
                raise
            await drained

    @staticmethod
    async def _write_one_by_one(channel: Any, batch: list[_Queued]) -> None:
        """The fallback: aiormq's own ``basic_publish``, one write per message."""

        async def one(item: _Queued) -> None:
            try:
                result = await channel.basic_publish(
                    item.body,
                    exchange=item.exchange,
                    routing_key=item.routing_key,
                    properties=item.properties,
                    mandatory=True,
                )
            except Exception as exc:
                if not item.outcome.done():
                    item.outcome.set_exception(exc)
            else:
                if not item.outcome.done():
                    item.outcome.set_result(result)

        await asyncio.gather(*(one(item) for item in batch if not item.outcome.done()))
