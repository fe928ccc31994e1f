"""The RabbitMQ transport (``amqp://`` / ``amqps://``), on aio-pika.

Topology (see `_rabbitmq_topology`): a durable topic exchange per bus, a durable queue per
group bound with its patterns (classic, or quorum with ``Bus(..., queue_type="quorum")``),
ordered groups as ``partitions`` single-active-consumer queues behind a consistent-hash
exchange, per-group delay-tier TTL queues, and ``<bus>.<group>.dlq``.

Publishing: persistent messages, publisher confirms always on, ``mandatory`` so a message no
queue takes comes back as a return and is reported (``False``); a burst is pipelined (every
message is sent, then every confirm awaited). A publish interrupted by a lost connection is
retried (the unconfirmed messages only) until ``publish_timeout`` seconds (default 30) pass,
then `BrokerUnavailable`. `connect_robust` restores channels and consumers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
import aiormq.abc
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractRobustConnection,
)
from aiormq.abc import DeliveredMessage

from ..._exceptions import BrokerUnavailable, ConfigError, MessageTooLarge
from .._failure import Failure
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._stats import GroupStats
from .._transport import Consumer, Deliver, Transport
from .._urls import mask_url
from ._consumer import Handle, RabbitConsumer
from ._dlq import DeadLetterOps, dead_letter_headers
from ._publisher import BatchPublisher, Outbound
from ._stats import Management, QueueInfo
from ._topology import (
    declare_bus,
    declare_group,
    partitions_of,
    queue_type_of,
    quiet_connect_errors,
    stale_bindings,
    translate,
    unbind,
)
from ._wire import (
    H_ATTEMPT,
    H_DUE_AT,
    H_FIRST_FAILED,
    H_LAST_FAILED,
    TIERS,
    Names,
    copy_message,
    pick_tier,
    to_amqp,
)

__all__ = ["RabbitMQTransport"]

DEAD_WINDOW = 300.0

log = logging.getLogger("tidings.rabbitmq")

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ConnectionClosed,
    RuntimeError,
    TimeoutError,
)


def _seconds(extra: Mapping[str, object], name: str, default: float) -> float:
    value = extra.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


class RabbitMQTransport(DeadLetterOps, Transport):
    """RabbitMQ binding. Options (``Bus(url, **extra)``): ``queue_type`` ("classic" or
    "quorum"), ``partitions`` (ordered groups, default 4), ``publish_timeout`` (seconds,
    default 30), ``reconnect_interval`` (seconds, default 1), ``management_url`` (default
    ``http://<host>:15672``)."""

    scheme = "amqp"
    capabilities = frozenset[str]()

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        extra = options.extra
        queue_type_of(extra)
        self.partitions = partitions_of(extra)
        self.names = Names(options.name)
        self.publish_timeout = _seconds(extra, "publish_timeout", 30.0)
        self.reconnect_interval = _seconds(extra, "reconnect_interval", 1.0)
        management = extra.get("management_url")
        self._management = Management(url, str(management) if management else None)
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._ops: AbstractChannel | None = None
        self._batcher: BatchPublisher | None = None
        self._consumers: list[RabbitConsumer] = []
        self._groups: dict[str, GroupSpec] = {}
        self._dlq_lock = asyncio.Lock()
        self._dead_at: dict[str, deque[float]] = {}

    # -- connection --------------------------------------------------------------------------

    async def open(self) -> None:
        if self._connection is not None:
            return
        try:
            with quiet_connect_errors():
                self._connection = await aio_pika.connect_robust(
                    self.url,
                    timeout=10.0,
                    reconnect_interval=self.reconnect_interval,
                    client_properties={"connection_name": f"tidings {self.options.name}"},
                )
            self._publisher = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._batcher = BatchPublisher(self._publishing_channel)
            self._ops = await self._connection.channel()
        except Exception as exc:
            await self._close_quietly()
            raise translate(exc, self.url, "connecting") from exc

    async def _close_quietly(self) -> None:
        connection, self._connection = self._connection, None
        batcher, self._batcher = self._batcher, None
        self._publisher = self._ops = None
        if batcher is not None:
            await batcher.close()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def close(self) -> None:
        for consumer in list(self._consumers):
            await consumer.stop(0)
        self._consumers.clear()
        await self._close_quietly()

    def connection_for_consumers(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailable(f"the transport for {mask_url(self.url)} is not open")
        return self._connection

    async def _channel(self) -> AbstractChannel:
        """A usable plain channel (a failed passive declare closes a channel)."""
        connection = self.connection_for_consumers()
        if self._ops is None or self._ops.is_closed:
            self._ops = await connection.channel()
        return self._ops

    async def _publishing_channel(self) -> aiormq.abc.AbstractChannel:
        """The confirm channel's current aiormq channel; fails at once while it is down
        (rather than waiting for the reconnect: `_send_all` owns the deadline)."""
        channel = self._publisher
        if channel is None or channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the publishing channel is closed")
        return await channel.get_underlay_channel()

    def forget(self, consumer: RabbitConsumer) -> None:
        with contextlib.suppress(ValueError):
            self._consumers.remove(consumer)

    # -- topology ----------------------------------------------------------------------------

    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        # A fresh channel: PRECONDITION_FAILED (an existing queue with other arguments)
        # closes the channel it happened on.
        channel = await self.connection_for_consumers().channel()
        try:
            await declare_bus(channel, self.names)
            for spec in groups:
                await declare_group(channel, self.names, spec, self.options.extra)
                self._groups[spec.name] = spec
            # Patterns a group no longer has: unbind them (needs the management API to list
            # bindings; without it, old bindings stay until the queue is deleted).
            found = await self._management.bindings(self.names.prefix) if groups else None
            for spec in groups:
                for binding in stale_bindings(self.names, spec, found or []):
                    await unbind(channel, binding)
        except Exception as exc:
            raise translate(exc, self.url, "declaring the topology") from exc
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    def _queues_of(self, spec: GroupSpec) -> list[str]:
        if spec.ordered:
            return [self.names.partition(spec.name, n) for n in range(self.partitions)]
        return [self.names.queue(spec.name)]

    # -- publishing --------------------------------------------------------------------------

    def _route(self, message: OutgoingMessage) -> tuple[str, str]:
        """(exchange, routing key) for a message."""
        if message.delay > 0:
            tier, _ = pick_tier(message.delay)
            if message.group is not None:
                return "", self.names.delay_queue(message.group, tier)
            return self.names.delay_exchange, f"{tier}.{message.type}"
        if message.group is not None:
            return self.names.direct, message.group
        return self.names.exchange, message.type

    async def _send_all(self, items: Sequence[Outbound]) -> list[bool]:
        """Send all, then await all confirms; retry unconfirmed ones across a reconnect."""
        results: list[bool | None] = [None] * len(items)
        deadline = time.monotonic() + self.publish_timeout
        while True:
            pending = [i for i, r in enumerate(results) if r is None]
            outcomes = await self._send_pending(items, pending, deadline)
            failure: BaseException | None = None
            for i, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, bool):
                    results[i] = outcome
                elif isinstance(outcome, aiormq.exceptions.ChannelPreconditionFailed):
                    raise translate(outcome, self.url, "publishing") from outcome
                elif isinstance(outcome, BaseException):
                    if not isinstance(outcome, _CONNECTION_ERRORS):
                        raise translate(outcome, self.url, "publishing") from outcome
                    failure = outcome
            if failure is None:
                return [bool(r) for r in results]
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"cannot publish to RabbitMQ at {mask_url(self.url)}: no confirm within "
                    f"{self.publish_timeout:g}s ({type(failure).__name__}: {failure})"
                ) from failure
            await self._await_reconnect(deadline)

    async def _send_pending(
        self, items: Sequence[Outbound], pending: list[int], deadline: float
    ) -> list[bool | BaseException]:
        """Outcomes of sending `items[i]` for each pending `i`: True confirmed, False returned
        (unroutable), or the error. All are queued before any is awaited, so they leave
        together (see `BatchPublisher`)."""
        publisher = self._batcher
        if publisher is None:
            raise BrokerUnavailable(f"the transport for {mask_url(self.url)} is not open")
        futures = [publisher.submit(*items[i]) for i in pending]
        # Bounded by the deadline: a confirm lost with its connection may never come.
        await asyncio.wait(futures, timeout=max(0.01, deadline - time.monotonic()))
        return [self._outcome(future) for future in futures]

    def _outcome(self, future: asyncio.Future[Any]) -> bool | BaseException:
        """True confirmed, False returned (unroutable), or the error."""
        if not future.done():
            future.cancel()
            return TimeoutError("no confirm from the broker yet")
        if future.cancelled():
            return aiormq.exceptions.ChannelInvalidStateError("the publish was cancelled")
        exc = future.exception()
        if exc is None:
            return True
        if isinstance(exc, aiormq.exceptions.PublishError):
            return False
        if isinstance(exc, aiormq.exceptions.DeliveryError):
            refused = BrokerUnavailable(
                f"RabbitMQ at {mask_url(self.url)} did not accept a message (negative confirm)"
            )
            refused.__cause__ = exc
            return refused
        return exc

    async def _await_reconnect(self, deadline: float) -> None:
        await asyncio.sleep(0.2)
        connection = self._connection
        if connection is None:
            raise BrokerUnavailable(f"the transport for {mask_url(self.url)} is closed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                connection.connected.wait(), max(0.1, deadline - time.monotonic())
            )
        if self._publisher is not None and self._publisher.is_closed:
            with contextlib.suppress(Exception):
                await self._publisher.reopen()

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        limit = self.options.max_message_size
        for message in messages:
            if len(message.body) > limit:
                raise MessageTooLarge(
                    f"message {message.id!r} is {len(message.body)} bytes, over the limit of "
                    f"{limit} bytes (max_message_size)"
                )
        app_id = self.options.name
        items = [(*self._route(m), m.body, to_amqp(m, app_id)) for m in messages]
        return await self._send_all(items)

    # -- consuming and settling --------------------------------------------------------------

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        if group.name not in self._groups:
            await self.declare([group])
        consumer = RabbitConsumer(self, group, deliver, self._queues_of(group))
        try:
            await consumer.start()
        except Exception as exc:
            await consumer.stop(0)
            raise translate(exc, self.url, f"consuming group {group.name!r}") from exc
        self._consumers.append(consumer)
        return consumer

    @staticmethod
    def _handle(delivery: Delivery) -> Handle:
        handle = delivery.handle
        if not isinstance(handle, Handle):
            raise ConfigError("this delivery was not made by the RabbitMQ transport")
        return handle

    async def ack(self, delivery: Delivery) -> None:
        self.ack_soon(delivery)

    def ack_soon(self, delivery: Delivery) -> bool:
        """Acks are queued in any case (`AckBatcher`), so `ack` has nothing to wait for
        either; a channel lost meanwhile means the broker redelivers (at least once)."""
        handle = self._handle(delivery)
        handle.consumer.ack(handle)
        return True

    async def delay_again(
        self, consumer: RabbitConsumer, message: DeliveredMessage, due: float
    ) -> None:
        """A delayed message arrived before its due time: send it through a tier again."""
        tier, _ = pick_tier(due)
        queue = self.names.delay_queue(consumer.spec.name, tier)
        await self._send_all([("", queue, *copy_message(message, {}))])
        consumer.ack_message(message)

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        handle = self._handle(delivery)
        if handle.consumer.spec.ordered:
            handle.consumer.retry_in_place(delivery, delay, failure)
            return
        delay = max(0.0, delay)
        tier, _ = pick_tier(delay)
        headers = {
            H_ATTEMPT: str(delivery.attempt + 1),
            H_FIRST_FAILED: repr(delivery.first_failed_at or failure.at),
            H_LAST_FAILED: repr(failure.at),
            H_DUE_AT: repr(time.time() + delay),
        }
        queue = self.names.delay_queue(delivery.group, tier)
        await self._send_all([("", queue, *copy_message(handle.message, headers))])
        handle.consumer.ack(handle)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        handle = self._handle(delivery)
        copy = copy_message(handle.message, dead_letter_headers(delivery, failure))
        await self._send_all([("", self.names.dlq(delivery.group), *copy)])
        handle.consumer.ack(handle)
        self._dead_at.setdefault(delivery.group, deque()).append(time.monotonic())

    # -- stats -------------------------------------------------------------------------------

    async def _depth(self, name: str) -> tuple[int, int] | None:
        """(messages ready, consumers) of a queue, or None when it does not exist."""
        channel = await self._channel()
        try:
            ok = await (await channel.get_underlay_channel()).queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            self._ops = None
            return None
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    async def _known_groups(self) -> tuple[dict[str, bool], dict[str, list[QueueInfo]]]:
        groups = {name: spec.ordered for name, spec in self._groups.items()}
        by_group: dict[str, list[QueueInfo]] = {}
        rows = await self._management.queues(self.names.prefix) or []
        for row in rows:
            if row.group is not None and row.name == self.names.queue(row.group):
                groups.setdefault(row.group, False)
            elif row.group is not None and row.name == self.names.partition(row.group, 0):
                groups.setdefault(row.group, True)
        for row in rows:
            for group in groups:
                own = self.names.queue(group)
                if row.name == own or row.name.startswith(own + "."):
                    by_group.setdefault(group, []).append(row)
        return groups, by_group

    def _main(self, group: str, ordered: bool) -> list[str]:
        if ordered:
            return [self.names.partition(group, n) for n in range(self.partitions)]
        return [self.names.queue(group)]

    async def _group_stats(self, group: str, ordered: bool, rows: list[QueueInfo]) -> GroupStats:
        ready = consumers = scheduled = 0
        for name in self._main(group, ordered):
            depth = await self._depth(name)
            if depth is not None:
                ready += depth[0]
                consumers = max(consumers, depth[1])
        for tier, _ in TIERS:
            depth = await self._depth(self.names.delay_queue(group, tier))
            scheduled += depth[0] if depth else 0
        dead = await self._depth(self.names.dlq(group))
        local = [c for c in self._consumers if c.spec.name == group]
        if local:
            in_flight = sum(len(c.active) for c in local)
            ready += sum(c.counts.waiting for c in local)
            scheduled += sum(c.counts.retrying for c in local)
        else:
            in_flight = sum(r.unacked for r in rows if r.name in self._main(group, ordered))
        main = [r for r in rows if r.name in self._main(group, ordered)]
        rates = [r for r in main if r.publish_rate is not None or r.ack_rate is not None]
        heads = [r.head_timestamp for r in main if r.head_timestamp is not None]
        oldest = max(0.0, time.time() - min(heads)) if heads and ready else 0.0
        return GroupStats(
            group=group,
            ready=ready,
            in_flight=in_flight,
            scheduled=scheduled,
            dead=dead[0] if dead else 0,
            consumers=consumers,
            oldest_age=oldest,
            publish_rate=sum(r.publish_rate or 0.0 for r in rates) if rates else None,
            ack_rate=sum(r.ack_rate or 0.0 for r in rates) if rates else None,
            dead_recent=self._dead_recent(group, rows),
        )

    def _dead_recent(self, group: str, rows: list[QueueInfo]) -> int:
        """Dead letters in the last 5 minutes: this process's own, or the DLQ's publish rate
        over that window from the management API, whichever is larger."""
        times = self._dead_at.get(group, deque())
        horizon = time.monotonic() - DEAD_WINDOW
        while times and times[0] < horizon:
            times.popleft()
        dlq = self.names.dlq(group)
        rate = max((r.publish_rate or 0.0 for r in rows if r.name == dlq), default=0.0)
        return max(len(times), round(rate * DEAD_WINDOW))

    async def stats(self) -> list[GroupStats]:
        try:
            groups, rows = await self._known_groups()
            return [
                await self._group_stats(name, ordered, rows.get(name, []))
                for name, ordered in sorted(groups.items())
            ]
        except Exception as exc:
            raise translate(exc, self.url, "reading queue stats") from exc

    async def ping(self) -> None:
        """A round trip on the connection: a passive declare of ``amq.topic``, which every
        virtual host has (nothing is created)."""
        try:
            channel = await self._channel()
            await (await channel.get_underlay_channel()).exchange_declare(
                "amq.topic", exchange_type="topic", passive=True
            )
        except Exception as exc:
            raise translate(exc, self.url, "checking the broker") from exc
