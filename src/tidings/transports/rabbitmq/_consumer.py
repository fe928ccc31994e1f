"""Consuming a group from RabbitMQ: manual acks after the handler, at most `concurrency`
handlers running at a time.

An unordered group is one `Lane` (prefetch = concurrency) over its queue, and over its
returns lane when it is bounded; its retries go through the delay queues (see
`RabbitMQTransport.retry_later`). An ordered group is one lane per partition, each with a
prefetch of one: a partition is served in order, one delivery at a time, by its single active
consumer.

Ordered retries keep their place *and* their attempt count. A failed delivery stays
unacknowledged in the worker for its back-off, holding its partition (only its partition:
the other partitions go on). When it is due, the lane gives it back (`Lane.give_back`): its
channel closes, RabbitMQ puts it back at the head of its quorum partition queue and adds one
to its ``x-delivery-count``, and it is delivered again, as attempt ``tidings-attempt +
x-delivery-count``. A worker killed while the delivery waits has the same effect, so the
count is the broker's, durable, and ``Retry(attempts=N)`` runs it at most N times. (Chosen
over a separate retry lane per partition: a second queue has a single active consumer of its
own, which may be another worker than the partition's, and then order is lost. Observed on
RabbitMQ 3.10.8: a quorum queue returns a message whose consumer's channel closed, or whose
process was killed, to the head, with ``x-delivery-count`` one higher; a nack with requeue
puts it at the back.)

A postponed delivery (`hold`: a duplicate waiting for a claim, a dedupe store that is down)
waits the same way but runs again in the worker, not given back, so no attempt is counted.

Stopping cancels the consumers, waits for running handlers, cancels the rest and closes the
channels: RabbitMQ returns every unsettled delivery to its queue (a quorum queue counts it;
a classic queue flags it redelivered, counted as one more attempt).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from ..._clock import Clock
from .._failure import Failure
from .._group import GroupSpec
from .._message import Delivery
from .._transport import Consumer, Deliver
from ._acks import AckBatcher
from ._dlq import dead_letter_headers
from ._lane import Lane
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
    """What `Delivery.handle` holds: the AMQP message, the consumer and lane it came on."""

    consumer: RabbitConsumer
    message: DeliveredMessage
    lane: Lane
    settled: bool = False


@dataclass(slots=True)
class _Counts:
    retrying: int = 0


class RabbitConsumer(Consumer):
    """A running consumer of one group.

    Args:
        spec: the group.
        deliver: the callback of each delivery.
        queues: the group's queues (its partitions, for an ordered group).
        connection: the transport's connection, to open the channels on.
        delay_again: what to do with a message that arrived before it is due.
        forget: called once the consumer has stopped.
        clock: the transport's clock (due times are on it).
        counted: the queues are quorum queues, whose ``x-delivery-count`` counts returns
            (always so for an ordered group's partitions).
        on_dead: called with the group's name for each message this consumer dead-letters
            itself (unreadable bookkeeping, an oversized body), for the stats.
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
        counted: bool = False,
        on_dead: Callable[[str], None] = lambda group: None,
        max_body: int | None = None,
    ) -> None:
        self._max_body = max_body
        self._delay_again = delay_again
        self._forget = forget
        self._clock = clock
        self._on_dead = on_dead
        self.spec = spec
        self._deliver = deliver
        self._counted = counted or spec.ordered
        self._dlq = dlq_of(spec.name, queues[0], partitioned=spec.ordered)
        self._acks = AckBatcher(spec.name)
        options: dict[str, Any] = {
            "connection": connection,
            "on_message": self._on_message,
            "acks": self._acks,
            "owner": spec.name,
        }
        if spec.ordered:
            self._lanes = [Lane([name], 1, **options) for name in queues]
        else:
            self._lanes = [Lane(queues, spec.concurrency, **options)]
        self._slots = asyncio.Semaphore(spec.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._retries: set[asyncio.Task[None]] = set()
        self.counts = _Counts()
        self.active: set[Handle] = set()
        self._stopping = False

    async def start(self) -> None:
        for lane in self._lanes:
            await lane.open()

    # -- receiving ---------------------------------------------------------------------------

    async def _on_message(self, lane: Lane, message: DeliveredMessage) -> None:
        # Runs in aiormq's task for this delivery, which closing the channel cancels; the
        # handler runs in a task of ours (`_dispatch`), so a lost connection does not cancel it.
        if self._stopping:
            return  # left unacknowledged: closing the channel returns it
        handle = Handle(self, message, lane)
        size = len(message.body)
        if self._max_body is not None and size > self._max_body:
            reason = f"a body of {size} bytes is over max_message_size ({self._max_body} bytes)"
            self._spawn(self._dead_letter_as_is(handle, reason))
            return
        try:
            delivery = incoming_to_delivery(self.spec.name, message, handle, counted=self._counted)
        except BadBookkeeping as exc:
            # Run or delayed on made-up numbers it could loop or stall the group: it goes
            # to the DLQ as it came, once (its bookkeeping headers are rewritten there).
            self._spawn(self._dead_letter_as_is(handle, str(exc)))
            return
        remaining = due_in(message, self._clock.time())
        if remaining > DUE_SLACK:
            self._spawn(self._delay_again(self, message, remaining))
            return
        given_back, lane.first_failed = lane.first_failed, None
        if given_back is not None and given_back[0] == delivery.id:
            delivery = replace(delivery, first_failed_at=delivery.first_failed_at or given_back[1])
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
        """Send the message to the group's DLQ with `reason` and acknowledge it, on its
        lane's channel (in confirm mode: acknowledged only once the DLQ has it)."""
        delivery = safe_delivery(self.spec.name, handle.message, handle)
        failure = Failure(reason, None, reason, "", self._clock.time())
        body, properties = copy_message(handle.message, dead_letter_headers(delivery, failure))
        underlay = await handle.lane.underlay()
        await underlay.basic_publish(
            body, exchange="", routing_key=self._dlq, properties=properties, mandatory=True
        )
        logger.error(
            "dead-lettered %s in %s: %s", delivery.id or "a message", self.spec.name, reason
        )
        self.ack_message(handle.message)
        self._on_dead(self.spec.name)

    def _dispatch(self, delivery: Delivery) -> None:
        handle = delivery.handle
        assert isinstance(handle, Handle)
        self.active.add(handle)
        task = asyncio.create_task(self._run(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                await self._deliver(delivery)
        except Exception:
            # The pipeline settles every outcome itself; anything escaping it is a defect
            # worth a log line, and the delivery returns to the group when the channel closes.
            logger.exception("delivery callback of %s failed", self.spec.name)
        finally:
            # Cancelled before settling: the channel's close returns it.
            self.active.discard(delivery.handle)  # type: ignore[arg-type,unused-ignore]

    # -- settling (called by the transport) --------------------------------------------------

    def ack(self, handle: Handle) -> None:
        """Acknowledge (queued: see `AckBatcher`). A channel lost meanwhile means the broker
        redelivers it (at least once), so that is logged."""
        self.ack_message(handle.message)
        self.settled(handle)

    def ack_message(self, message: DeliveredMessage) -> None:
        """Queue the ack of `message` on the channel it came on."""
        tag = message.delivery_tag
        if tag is not None:
            self._acks.ack(message.channel, tag)

    def settled(self, handle: Handle) -> None:
        """The delivery was acknowledged or dead-lettered."""
        handle.settled = True
        self.active.discard(handle)

    def retry_in_place(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        """Hold `delivery` (an ordered group's) for `delay` seconds, then give it back to the
        head of its partition, which counts the attempt (see the module docstring)."""
        handle = delivery.handle
        assert isinstance(handle, Handle)
        first_failed = delivery.first_failed_at or failure.at
        self._wait(handle, delay, self._give_back(handle, delivery.id, first_failed))

    def hold(self, delivery: Delivery, delay: float) -> None:
        """Hold `delivery` (an ordered group's) for `delay` seconds in its place, then run it
        again here with the same attempt (postponed, not counted)."""
        handle = delivery.handle
        assert isinstance(handle, Handle)
        self._wait(handle, delay, self._run_again(delivery))

    async def _give_back(self, handle: Handle, event_id: str | None, first_failed: float) -> None:
        handle.lane.first_failed = (event_id, first_failed)
        await handle.lane.give_back()

    async def _run_again(self, delivery: Delivery) -> None:
        self._dispatch(delivery)

    def _wait(self, handle: Handle, delay: float, then: Coroutine[Any, Any, None]) -> None:
        self.active.discard(handle)
        self.counts.retrying += 1

        async def later() -> None:
            try:
                await asyncio.sleep(max(0.0, delay))
            except asyncio.CancelledError:
                then.close()
                raise
            finally:
                self.counts.retrying -= 1
            # A channel lost meanwhile has returned it already: the broker delivers it again.
            if self._stopping or handle.message.channel.is_closed:
                then.close()
            else:
                await then

        task = asyncio.create_task(self._logged(later()))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self, timeout: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        for lane in self._lanes:
            await lane.cancel()
        for task in list(self._retries):
            task.cancel()
        running = set(self._tasks)
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        # Acks still queued go out before the close, which would return those deliveries.
        await self._acks.flush()
        for lane in self._lanes:
            await lane.close()
        self._forget(self)
