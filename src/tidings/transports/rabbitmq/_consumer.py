"""Consuming a group from RabbitMQ: prefetch = concurrency, manual acks after the handler.

An unordered group has one queue; an ordered group has `partitions` single-active-consumer
queues (one key always lands on one partition, and one consumer holds a partition). Within
this consumer an ordered group hands out one delivery per key at a time: later deliveries of a
busy key wait here, in arrival order, and a failed delivery retries *in place* (it stays
unacknowledged and is run again after its back-off), so nothing overtakes it. Unordered
retries go through the delay queues instead (see `RabbitMQTransport.retry_later`).

Stopping cancels the consumer tags, waits for running handlers, cancels the rest and closes
the channel: RabbitMQ requeues every unsettled delivery at its position, flagged redelivered,
which counts as one more attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from ..._clock import Clock
from .._failure import Failure
from .._group import GroupSpec
from .._message import Delivery
from .._transport import Consumer, Deliver
from ._acks import AckBatcher
from ._aiormq import consume
from ._dlq import dead_letter_headers
from ._wire import (
    DUE_SLACK,
    BadBookkeeping,
    copy_message,
    dlq_of,
    due_in,
    incoming_to_delivery,
    safe_delivery,
)

__all__ = ["DelayAgain", "Handle", "RabbitConsumer"]

DelayAgain = Callable[["RabbitConsumer", DeliveredMessage, float], Coroutine[Any, Any, None]]
"""Sends a message that arrived early back through a delay tier for the seconds it still has
to wait, then acknowledges it on its consumer."""

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Handle:
    """What `Delivery.handle` holds: the AMQP message and the consumer that owns it."""

    consumer: RabbitConsumer
    message: DeliveredMessage
    key: str | None
    settled: bool = False


@dataclass(slots=True)
class _Counts:
    waiting: int = 0
    retrying: int = 0


@dataclass(slots=True, eq=False)
class _Keys:
    busy: set[str] = field(default_factory=set)
    waiting: dict[str, deque[Delivery]] = field(default_factory=dict)


class RabbitConsumer(Consumer):
    """A running consumer of one group on its own channel.

    Args:
        spec: the group.
        deliver: the callback of each delivery.
        queues: the group's queues (its partitions, for an ordered group).
        connection: the transport's connection, to open the channel on.
        delay_again: what to do with a message that arrived before it is due.
        forget: called once the consumer has stopped.
        clock: the transport's clock (due times are on it).
        max_body: bodies longer than this (the bus's ``max_message_size``) are
            dead-lettered as they come, unread; None: no limit of ours.
    """

    def __init__(
        self,
        spec: GroupSpec,
        deliver: Deliver,
        queues: list[str],
        *,
        connection: Callable[[], AbstractRobustConnection],
        delay_again: DelayAgain,
        forget: Callable[[RabbitConsumer], None],
        clock: Clock,
        max_body: int | None = None,
    ) -> None:
        self._max_body = max_body
        self._connection = connection
        self._delay_again = delay_again
        self._forget = forget
        self._clock = clock
        self.spec = spec
        self._deliver = deliver
        self._queue_names = queues
        self._dlq = dlq_of(spec.name, queues[0], partitioned=spec.ordered)
        self._channel: AbstractRobustChannel | None = None
        self._tags: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._retries: set[asyncio.Task[None]] = set()
        self._keys = _Keys()
        self.counts = _Counts()
        self.active: set[Handle] = set()
        self._acks = AckBatcher(spec.name)
        self._stopping = False

    async def start(self) -> None:
        channel = await self._connection().channel()
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        # global_: one window over every partition queue of the group, not one per queue.
        await channel.set_qos(prefetch_count=self.spec.concurrency, global_=self.spec.ordered)
        # Consumed with aiormq's ``basic_consume`` (no aio-pika message object per delivery);
        # after a reconnect the robust channel reopens with its QoS and we consume again.
        await self._attach()
        channel.reopen_callbacks.add(self._reattach)

    async def _attach(self) -> None:
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        self._tags = [await consume(underlay, name, self._on_message) for name in self._queue_names]

    async def _reattach(self, *_: Any) -> None:
        if self._stopping:
            return
        try:
            await self._attach()
        except Exception as exc:
            logger.error("could not consume %s again after a reconnect: %s", self.spec.name, exc)
        else:
            logger.info("consuming %s again after a reconnect", self.spec.name)

    # -- receiving ---------------------------------------------------------------------------

    async def _on_message(self, message: DeliveredMessage) -> None:
        # Runs in aiormq's task for this delivery, which closing the channel cancels; the
        # handler runs in a task of ours (`_dispatch`), so a lost connection does not cancel it.
        if self._stopping:
            return  # left unacknowledged: closing the channel requeues it
        handle = Handle(self, message, None)
        size = len(message.body)
        if self._max_body is not None and size > self._max_body:
            reason = f"a body of {size} bytes is over max_message_size ({self._max_body} bytes)"
            self._spawn(self._dead_letter_as_is(handle, reason))
            return
        try:
            delivery = incoming_to_delivery(self.spec.name, message, handle)
        except BadBookkeeping as exc:
            # Run or delayed on made-up numbers it could loop or stall the group: it goes
            # to the DLQ as it came, once (its bookkeeping headers are rewritten there).
            self._spawn(self._dead_letter_as_is(handle, str(exc)))
            return
        remaining = due_in(message, self._clock.time())
        if remaining > DUE_SLACK:
            self._spawn(self._delay_again(self, message, remaining))
            return
        handle.key = delivery.key
        if self.spec.ordered and delivery.key is not None:
            if delivery.key in self._keys.busy:
                self._keys.waiting.setdefault(delivery.key, deque()).append(delivery)
                self.counts.waiting += 1
                return
            self._keys.busy.add(delivery.key)
        self._dispatch(delivery)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._logged(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logged(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as exc:
            # The message stays unacknowledged: the broker redelivers it.
            logger.warning(
                "could not move a message of %s on (delay or DLQ): %s", self.spec.name, exc
            )

    async def _dead_letter_as_is(self, handle: Handle, reason: str) -> None:
        """Send the message to the group's DLQ with `reason` and acknowledge it, on this
        consumer's channel (in confirm mode: acknowledged only once the DLQ has it)."""
        assert self._channel is not None
        delivery = safe_delivery(self.spec.name, handle.message, handle)
        failure = Failure(reason, None, reason, "", self._clock.time())
        body, properties = copy_message(handle.message, dead_letter_headers(delivery, failure))
        underlay = await self._channel.get_underlay_channel()
        await underlay.basic_publish(
            body, exchange="", routing_key=self._dlq, properties=properties, mandatory=True
        )
        logger.error(
            "dead-lettered %s in %s: %s", delivery.id or "a message", self.spec.name, reason
        )
        self.ack_message(handle.message)

    def _dispatch(self, delivery: Delivery) -> None:
        handle = delivery.handle
        assert isinstance(handle, Handle)
        self.active.add(handle)
        task = asyncio.create_task(self._run(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self._deliver(delivery)
        except Exception:
            # The pipeline settles every outcome itself; anything escaping it is a defect
            # worth a log line, and the delivery returns to the group when the channel closes.
            logger.exception("delivery callback of %s failed", self.spec.name)
        finally:
            # Cancelled before settling: the channel's close requeues it.
            self.active.discard(delivery.handle)  # type: ignore[arg-type,unused-ignore]

    # -- settling (called by the transport) --------------------------------------------------

    def ack(self, handle: Handle) -> None:
        """Acknowledge (queued: see `AckBatcher`) and release the delivery's key. A channel
        lost meanwhile means the broker redelivers it (at least once), so that is logged."""
        self.ack_message(handle.message)
        self.settled(handle)

    def ack_message(self, message: DeliveredMessage) -> None:
        """Queue the ack of `message` on the channel it came on."""
        tag = message.delivery_tag
        if tag is not None:
            self._acks.ack(message.channel, tag)

    def settled(self, handle: Handle) -> None:
        """The delivery was acknowledged or dead-lettered: release its key."""
        handle.settled = True
        self.active.discard(handle)
        self._release(handle.key)

    def _release(self, key: str | None) -> None:
        if not self.spec.ordered or key is None:
            return
        waiting = self._keys.waiting.get(key)
        if waiting and not self._stopping:
            self.counts.waiting -= 1
            nxt = waiting.popleft()
            if not waiting:
                del self._keys.waiting[key]
            self._dispatch(nxt)
        else:
            self._keys.busy.discard(key)

    def retry_in_place(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        """Run `delivery` again after `delay`, unacknowledged, holding its key meanwhile."""
        handle = delivery.handle
        assert isinstance(handle, Handle)
        self.active.discard(handle)
        self.counts.retrying += 1
        again = replace(
            delivery,
            attempt=delivery.attempt + 1,
            first_failed_at=delivery.first_failed_at or failure.at,
        )

        async def later() -> None:
            try:
                await asyncio.sleep(max(0.0, delay))
            finally:
                self.counts.retrying -= 1
            if not self._stopping:
                self._dispatch(again)

        task = asyncio.create_task(later())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self, timeout: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._channel is not None:
            self._channel.reopen_callbacks.discard(self._reattach)
            with contextlib.suppress(Exception):
                underlay = await self._channel.get_underlay_channel()
                for tag in self._tags:
                    await underlay.basic_cancel(tag)
        for task in list(self._retries):
            task.cancel()
        running = set(self._tasks)
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        # Acks still queued go out before the close, which would requeue those deliveries.
        await self._acks.flush()
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
        self._forget(self)
