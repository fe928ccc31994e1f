"""The RabbitMQ transport (``amqp://`` / ``amqps://``), on aio-pika.

Topology (see `_topology`): a durable topic exchange per bus, a durable queue per group bound
with its patterns (classic, or quorum with ``Bus(..., queue_type="quorum")``), ordered groups
as ``partitions`` single-active-consumer quorum queues behind a consistent-hash exchange,
per-group delay-tier TTL queues, and ``<bus>.<group>.dlq``. Ordered retries wait in place and
are counted by the broker (see `_consumer`); ``max_ready`` bounds are quorum queues'
``x-max-length`` with reject-publish, and a publish they refuse is `QueueFull` (`_bounds`).

Publishing: persistent messages, publisher confirms always on, ``mandatory`` so a message no
queue takes comes back as a return and is reported (``False``); a burst is pipelined (every
message is sent, then every confirm awaited). A publish interrupted by a lost connection is
retried (the unconfirmed messages only) until ``publish_timeout`` seconds (default 30) pass,
then `BrokerUnavailable` (see `_publisher`). The robust connection restores channels and
consumers by itself; losing it and getting it back are one WARNING line each (`_connection`),
and the client libraries' own log lines are kept out of the application's log while the
transport is open (`_client_logs`).

The URL is checked when the transport is made (a bad port or host is a `ConfigError` before
anything connects), and the first connection is bounded by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import aiormq.abc
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from ..._exceptions import BrokerUnavailable
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._stats import GroupStats
from .._transport import CAP_REPLAY_LOG, Consumer, Deliver, OnReply, Replies, Transport
from .._urls import mask_url
from ._address import AmqpAddress
from ._bounds import FullGroups, Resend, refuse_oversized
from ._connection import WatchedConnection
from ._consumer import RabbitConsumer
from ._dlq import DeadLetterQueues
from ._errors import translate
from ._management import Management
from ._options import RabbitMQOptions
from ._publisher import ConfirmedPublisher, Outbound, Refused
from ._replies import RabbitReplies, reply_outbound
from ._settling import Settlement, handle_of
from ._stats import GroupCounters, queue_depth
from ._stream import RetainedLog, unlogged
from ._topology import (
    check_bounds,
    declare_bus,
    declare_group,
    require_hash_exchange,
    route,
    stale_bindings,
    unbind,
)
from ._wire import Names, to_amqp

__all__ = ["RabbitMQTransport"]


class RabbitMQTransport(Transport):
    """RabbitMQ binding.

    Args:
        url: ``amqp://user:pass@host:port/vhost`` or ``amqps://...``; every part may be
            left out (``amqp://`` is guest on localhost:5672, virtual host ``/``).
        options: the common settings (`name` is the exchange name and queue prefix).
        settings: the transport's own options (defaults when None).

    Attributes:
        address: the checked URL with its defaults filled in (host, port, user, vhost).

    Raises:
        ConfigError: a port that is not a number from 1 to 65535, a host that cannot be
            parsed or a malformed ``management_url``, before anything connects.
    """

    scheme = "amqp"
    capabilities = frozenset[str]()

    def __init__(
        self, url: str, options: TransportOptions, settings: RabbitMQOptions | None = None
    ) -> None:
        super().__init__(url, options)
        self.settings = settings if settings is not None else RabbitMQOptions()
        self.address = AmqpAddress.parse(url)
        self.partitions = self.settings.partitions
        self.names = Names(options.name)
        self.publish_timeout = self.settings.publish_timeout
        self.reconnect_interval = self.settings.reconnect_interval
        self._management = Management(self.address.management(self.settings.management_url))
        self._link = WatchedConnection(
            self.address,
            name=options.name,
            connect_timeout=self.settings.connect_timeout,
            reconnect_interval=self.reconnect_interval,
        )
        self._hash_checked = False
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._ops: AbstractChannel | None = None
        self._sender: ConfirmedPublisher | None = None
        self._replies: RabbitReplies | None = None
        self._consumers: list[RabbitConsumer] = []
        self._groups: dict[str, GroupSpec] = {}
        self._dlq = DeadLetterQueues(
            self.names,
            url,
            connection=self.connection_for_consumers,
            publish=unlogged(self.publish),  # a dead letter's event is in the log already
        )
        self._counters = GroupCounters(
            self.names,
            self.partitions,
            self._management,
            depth=self._depth,
            declared=lambda: self._groups,
            consumers=lambda: self._consumers,
            clock=options.clock,
        )
        self._settle = Settlement(
            self.names, options.clock, self._send_all, self._counters.dead_lettered
        )
        self._log: RetainedLog | None = None
        if self.settings.replay_stream:
            self._log = RetainedLog(
                self.names,
                url,
                retention=options.retention,
                connection=self.connection_for_consumers,
                send=self._send_all,
                timeout=self.publish_timeout,
                management=self._management,
            )
            self.capabilities = frozenset({CAP_REPLAY_LOG})  # type: ignore[misc] # per option
        self._full = FullGroups(
            self.names,
            self.partitions,
            self._management,
            depth=self._depth,
            declared=lambda: self._groups,
        )

    @property
    def management_url(self) -> str:
        """The management API's base URL in use (given, or derived from the AMQP URL)."""
        return self._management.url

    # -- connection --------------------------------------------------------------------------

    async def open(self) -> None:
        if self._connection is not None:
            return
        try:
            self._connection = await self._link.open()
            self._publisher = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._sender = ConfirmedPublisher(
                self._publishing_channel,
                url=self.url,
                timeout=self.publish_timeout,
                reconnect=self._await_reconnect,
            )
            self._ops = await self._connection.channel()
        except Exception as exc:
            await self._close_quietly()
            raise translate(exc, self.url, "connecting") from exc

    async def _close_quietly(self) -> None:
        connection, self._connection = self._connection, None
        sender, self._sender = self._sender, None
        self._publisher = self._ops = None
        if sender is not None:
            await sender.close()
        if self._log is not None:
            await self._log.close()
        await self._link.close(connection)

    async def close(self) -> None:
        for consumer in list(self._consumers):
            await consumer.stop(0)
        self._consumers.clear()
        await self._close_quietly()

    def connection_for_consumers(self) -> AbstractRobustConnection:
        """The open connection; `BrokerUnavailable` when the transport is not open."""
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
        (rather than waiting for the reconnect: `ConfirmedPublisher` owns the deadline)."""
        channel = self._publisher
        if channel is None or channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the publishing channel is closed")
        return await channel.get_underlay_channel()

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

    def _forget(self, consumer: RabbitConsumer) -> None:
        with contextlib.suppress(ValueError):
            self._consumers.remove(consumer)

    # -- topology ----------------------------------------------------------------------------

    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        check_bounds(groups, self.settings)
        # A fresh channel: PRECONDITION_FAILED (an existing queue with other arguments)
        # closes the channel it happened on.
        channel = await self.connection_for_consumers().channel()
        try:
            ordered = [spec for spec in groups if spec.ordered]
            if ordered and not self._hash_checked:
                url, timeout = self.address.driver_url(), self.settings.connect_timeout
                await require_hash_exchange(url, self.names, ordered[0], timeout)
                self._hash_checked = True
            await declare_bus(channel, self.names)
            if self._log is not None:
                await self._log.declare()
            for spec in groups:
                await declare_group(channel, self.names, spec, self.settings)
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
        if spec.max_ready is not None:
            return [self.names.queue(spec.name), self.names.returns(spec.name)]
        return [self.names.queue(spec.name)]

    # -- publishing --------------------------------------------------------------------------

    async def _send_all(self, items: Sequence[Outbound]) -> list[bool]:
        sender = self._sender
        if sender is None:
            raise BrokerUnavailable(f"the transport for {mask_url(self.url)} is not open")
        return await sender.send(items)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        refuse_oversized(messages, self.options.max_message_size)
        app_id, now = self.options.name, self.options.clock.time()
        items = [(*route(self.names, m), m.body, to_amqp(m, app_id, now)) for m in messages]
        try:
            if self._replies is not None and messages and messages[0].reply_to is not None:
                return await self._replies.send(items)  # a request: on the reply channel
            routed = await self._send_all(items)
        except Refused as refused:
            resend: Resend = lambda indices: self._send_all([items[i] for i in indices])  # noqa: E731
            routed = await self._full.after_refusal(refused, messages, resend)
        if self._log is not None:  # after the confirm (see `_stream`)
            await self._log.record(messages, routed, app_id, now)
        return routed

    async def open_replies(self, on_reply: OnReply) -> Replies:
        self._replies = await RabbitReplies.open(
            self.connection_for_consumers(),
            on_reply,
            url=self.url,
            timeout=self.publish_timeout,
            reconnect=self._await_reconnect,
        )
        return self._replies

    async def send_reply(self, address: str, message: OutgoingMessage) -> None:
        # Not routed: the requester's channel is gone, and nobody waits for the reply.
        await self._send_all([reply_outbound(address, message, self.options.name)])

    async def replay(self, group: str, since: float) -> int:
        if self._log is None:
            return await super().replay(group, since)
        spec, now = self._groups.get(group), self.options.clock.time()
        return await self._log.replay(group, since, spec=spec, now=now)

    # -- consuming and settling --------------------------------------------------------------

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        if group.name not in self._groups:
            await self.declare([group])
        consumer = RabbitConsumer(
            group,
            deliver,
            self._queues_of(group),
            connection=self.connection_for_consumers,
            delay_again=self._settle.delay_again,
            forget=self._forget,
            clock=self.options.clock,
            counted=self.settings.queue_type == "quorum",
            on_dead=self._counters.dead_lettered,
            max_body=self.options.max_message_size,
        )
        try:
            await consumer.start()
        except Exception as exc:
            await consumer.stop(0)
            raise translate(exc, self.url, f"consuming group {group.name!r}") from exc
        self._consumers.append(consumer)
        return consumer

    async def ack(self, delivery: Delivery) -> None:
        self.ack_soon(delivery)

    def ack_soon(self, delivery: Delivery) -> bool:
        """Acks are queued in any case (`AckBatcher`), so `ack` has nothing to wait for
        either; a channel lost meanwhile means the broker redelivers (at least once)."""
        handle = handle_of(delivery)
        handle.consumer.ack(handle)
        return True

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        await self._settle.retry_later(delivery, delay, failure)

    async def postpone(self, delivery: Delivery, delay: float) -> None:
        await self._settle.postpone(delivery, delay)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        await self._settle.dead_letter(delivery, failure)

    # -- dead letters ------------------------------------------------------------------------

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        return await self._dlq.entries(group, limit, offset)

    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        return await self._dlq.get(group, entry_id)

    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        return await self._dlq.replay(group, entry_ids, rebuild)

    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        return await self._dlq.purge(group, entry_ids)

    # -- stats -------------------------------------------------------------------------------

    async def _depth(self, name: str) -> tuple[int, int] | None:
        return await queue_depth(self._channel, name)

    async def stats(self) -> list[GroupStats]:
        try:
            return await self._counters.read()
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
