"""The one door to aiormq's internals: batched publishes and acks, and raw consuming.

aiormq sends every ``basic_publish`` and every ``basic_ack`` as its own socket write and holds
the channel lock until that write has drained, so publishes and acks from concurrent tasks
leave one system call each. The fast paths here write a whole batch in one `ChannelFrame`:

- publishing encodes each message's frames itself (`_frames`, a third of the CPU pamqp's
  generic marshalling takes), numbers the batch with consecutive delivery tags and registers
  each message's outcome future as the channel's confirmation for its tag, the way
  ``aiormq.Channel.basic_publish`` registers its own (so returns and nacks reach it as they
  reach aiormq's publishes; `_confirms` settles them and fails them when the channel closes);
- acknowledging folds runs of delivery tags into ``multiple`` acks (`ChannelAcks`).

Both use the channel's state (``lock``, ``delivery_tag``, ``confirmations``,
``message_id_delivery_tag``, ``write_queue``, ``number``, ``create_future``, ``closing``,
``max_content_size``, and the confirm and return handlers `_confirms` replaces). `supported`
checks that a channel has it; when it does not (another aiormq version), `send_publishes` and
`send_acks` take the fallback: aiormq's public ``basic_publish`` and ``basic_ack``, one
message at a time. Tested with aiormq 7.2.4 and pamqp 4.0.1 (the versions the ``rabbitmq``
extra pins). Nothing else in tidings but `_confirms` touches aiormq's channel state or writes
frames.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp import commands as spec

from ._confirms import register, unregister, watch
from ._frames import publish_frames
from ._reader import socket_of

__all__ = [
    "ChannelAcks",
    "PendingPublish",
    "consume",
    "publish_one",
    "send_acks",
    "send_publishes",
    "supported",
    "write_now",
]

_STATE = (
    "lock",
    "delivery_tag",
    "confirmations",
    "message_id_delivery_tag",
    "write_queue",
    "number",
    "create_future",
    "max_content_size",
    "_on_confirm_frame",
    "_on_return_frame",
)


def supported(channel: Any) -> bool:
    """Whether `channel` (an aiormq channel) has the state the fast paths use."""
    # ``closing`` is looked up on the class: reading the property makes a new observer of
    # the channel's close, kept until the channel closes.
    return all(hasattr(channel, name) for name in _STATE) and hasattr(type(channel), "closing")


@dataclass(slots=True, eq=False)
class PendingPublish:
    """One mandatory publish waiting to be written; `outcome` gets the broker's answer."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    outcome: asyncio.Future[Any]


async def consume(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    on_message: Callable[[DeliveredMessage], Coroutine[Any, Any, None]],
) -> str:
    """Consume `queue` (which must exist) with aiormq's ``basic_consume``: no aio-pika message
    object per delivery. Returns the consumer tag."""
    await channel.queue_declare(queue, passive=True)
    ok = await channel.basic_consume(queue, on_message)
    assert ok.consumer_tag is not None
    return ok.consumer_tag


# -- publishing ------------------------------------------------------------------------------


async def send_publishes(channel: Any, batch: list[PendingPublish]) -> None:
    """Write `batch` on `channel` (in one write when `supported`); each item's outcome
    resolves with the broker's ``Basic.Ack``, or fails with ``PublishError`` (returned),
    ``DeliveryError`` (nacked) or the error that closed the channel."""
    if supported(channel):
        await _write_publishes(channel, batch)
    else:
        await _publish_each(channel, batch)


def _encode(channel: Any, batch: list[PendingPublish]) -> tuple[bytes, list[int]]:
    """The frames of `batch` in one byte string, each publish numbered and registered (one
    AMQP cannot carry fails alone, with no tag taken); publishes already settled (their
    publisher gave up) are left out."""
    parts: list[bytes] = []
    registered: list[int] = []
    number, limit = channel.number, channel.max_content_size
    for item in batch:
        if item.outcome.done():
            continue  # its publisher was cancelled before it was sent
        properties = item.properties
        if not properties.message_id:
            # aiormq matches a returned message to its publish by message id.
            properties.message_id = uuid.uuid4().hex
        try:
            frames = publish_frames(
                number, item.exchange, item.routing_key, item.body, properties, limit
            )
        except (TypeError, ValueError, struct.error) as exc:
            item.outcome.set_exception(exc)
            continue
        registered.append(register(channel, str(properties.message_id), item.outcome))
        parts += frames
    return b"".join(parts), registered


async def _write_publishes(channel: Any, batch: list[PendingPublish]) -> None:
    async with channel.lock:
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
        watch(channel)
        payload, registered = _encode(channel, batch)
        if not payload:
            return
        drained = channel.create_future()
        try:
            frame = ChannelFrame(payload=payload, should_close=False, drain_future=drained)
            await channel.write_queue.put(frame)
        except BaseException:
            unregister(channel, registered)
            drained.cancel()
            raise
        await drained


WRITE_NOW_BUFFER = 1 << 20
"""`write_now` writes only while the socket's send buffer holds less than this."""


def write_now(channel: Any, batch: list[PendingPublish]) -> bool:
    """Write `batch` to the connection's socket now, from the publishing task, so the broker
    works on it while later publishes are still being made (the writer task would send it
    only after every task ready in this event-loop turn has run). Returns False, writing
    nothing, unless it can keep aiormq's order and flow control: a socket known
    (`_reader.socket_of`) with room in its buffer, nothing queued for aiormq's writer, the
    channel open and not in a call, and the connection not blocked by the broker."""
    connection = getattr(channel, "connection", None)
    transport = socket_of(connection)
    if (
        transport is None
        or not supported(channel)
        or channel.is_closed
        or not _lock_free(channel)
        or not channel.write_queue.empty()
        or not _unblocked(connection)
        or transport.get_write_buffer_size() >= WRITE_NOW_BUFFER
    ):
        return False
    watch(channel)
    payload, _ = _encode(channel, batch)
    if payload:
        transport.write(payload)
    return True


def _lock_free(channel: Any) -> bool:
    """Whether no call holds the channel's lock (aiormq's ``lock`` is a context manager
    around this private lock); unknown: False."""
    lock = getattr(channel, "_Channel__lock", None)
    return isinstance(lock, asyncio.Lock) and not lock.locked()


def _unblocked(connection: Any) -> bool:
    """Whether the broker lets the connection publish (``connection.blocked`` not in force);
    unknown: False."""
    event = getattr(connection, "_Connection__connection_unblocked", None)
    return isinstance(event, asyncio.Event) and event.is_set()


async def publish_one(channel: Any, item: PendingPublish) -> None:
    """Publish `item` with aiormq's public ``basic_publish`` (one write; no body frame for
    an empty body) and settle its outcome."""
    if item.outcome.done():
        return  # its publisher was cancelled before it was sent
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


async def _publish_each(channel: Any, batch: list[PendingPublish]) -> None:
    """The fallback: aiormq's own ``basic_publish``, one write per message."""
    await asyncio.gather(*(publish_one(channel, item) for item in batch))


# -- acknowledging ---------------------------------------------------------------------------


class ChannelAcks:
    """What has been acknowledged on one channel, to fold runs into ``multiple`` acks.

    Delivery tags are numbered 1, 2, 3... per channel, so once every tag up to ``T`` is
    acknowledged, ``basic.ack(T, multiple=True)`` covers them all. ``T`` is always a tag
    acknowledged for the first time in that flush (the broker refuses a tag it no longer
    holds, and ``multiple`` passes over the ones it already let go); tags above the contiguous
    run go out one by one.
    """

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


async def send_acks(channel: Any, acks: ChannelAcks, tags: list[int]) -> None:
    """Acknowledge `tags` (never acknowledged before) on `channel`: in one write of folded
    acks when `supported`, else one public ``basic_ack`` per tag."""
    if supported(channel):
        frame = ChannelFrame.marshall(channel_number=channel.number, frames=acks.frames(tags))
        await channel.write_queue.put(frame)
        return
    for tag in tags:
        await channel.basic_ack(tag)
