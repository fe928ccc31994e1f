"""The Kafka transport (``kafka://host:port[,host:port]``), on aiokafka.

Topology (see `_names`): a topic per event type under the bus name; a group is a Kafka
consumer group subscribed by pattern to the topics of the types it handles, its command
topic and its delay-tier retry topics; its dead letters in ``<bus>__<group>.dlq``. Group
bindings live in a compacted topic, so a publish no group takes is `Unroutable` as on the
other transports. The publish key is the record key (one key, one partition, in order).

Delivery: at least once per group; offsets are committed after a delivery settled,
contiguously per partition (`_consumer`). Retries go to the retry topics (non-blocking);
an ordered group retries in place, holding back its partition. ``bus.replay`` seeks the
event topics by time. ``max_ready`` is `NotSupported`: Kafka has no bound on a group's
backlog to refuse a publish with.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

from ..._exceptions import BrokerUnavailable, NotSupported
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._routing import matches
from .._stats import GroupStats
from .._transport import CAP_REPLAY_LOG, Consumer, Deliver, OnReply, Replies, Transport
from .._urls import mask_url
from ._address import KafkaAddress
from ._admin import TopicSpec, Topology
from ._attempts import AttemptStore
from ._bindings import Bindings
from ._client_logs import quiet_client_logs, restore_client_logs
from ._committed import CommittedOffsets
from ._consumer import GroupConsumer, Handle
from ._dlq import DeadLetterQueues
from ._errors import translate
from ._log import CompactedTable, TopicReader
from ._names import Names, pick_tier
from ._options import KafkaOptions
from ._publisher import Producer, Router
from ._replay import replay_group
from ._replies import KafkaReplies, send_reply
from ._stats import Counters
from ._wire import H_ATTEMPT, H_DUE_AT, H_FIRST_FAILED, H_LAST_FAILED, copy_of

__all__ = ["KafkaTransport"]

logger = logging.getLogger(__name__)

DEAD_WINDOW = 300.0
"""Seconds over which `GroupStats.dead_recent` counts new dead letters."""


class KafkaTransport(Transport):
    """Kafka binding.

    Args:
        url: ``kafka://host:port[,host:port]`` (port 9092 by default).
        options: the common settings (`name` is the prefix of every topic and group).
        settings: the transport's own options (defaults when None).

    Raises:
        ConfigError: a malformed URL or a bus name that cannot name a topic, before
            anything connects.
    """

    scheme = "kafka"
    capabilities = frozenset({CAP_REPLAY_LOG})

    def __init__(
        self, url: str, options: TransportOptions, settings: KafkaOptions | None = None
    ) -> None:
        super().__init__(url, options)
        self.settings = settings if settings is not None else KafkaOptions()
        self.address = KafkaAddress.parse(url)
        self.names = Names(options.name)
        where, timeout = mask_url(url), self.settings.connect_timeout
        bootstrap = self.address.bootstrap
        publish_timeout = self.settings.publish_timeout
        self._producer = Producer(
            bootstrap,
            where,
            options.max_message_size,
            publish_timeout,
            self.settings.max_batch_size,
        )
        # The tables (bindings, dead letters, attempt counts) are read up to the end offset,
        # which tansu gets wrong after a batch of several records: one record per batch.
        self._tables = Producer(bootstrap, where, options.max_message_size, publish_timeout, 1)
        self._topology = Topology(bootstrap, where, self.settings.replication_factor, timeout)
        self._reader = TopicReader(bootstrap, where, max(timeout, 10.0))
        self._committed = CommittedOffsets(bootstrap, where, timeout)
        self._bindings = Bindings(
            CompactedTable(self._reader, self.names.bindings), self._tables.send_value
        )
        self._router = Router(
            self.names,
            self._producer,
            self._topology,
            self._bindings,
            options.clock,
            partitions=self.settings.partitions,
            max_message_size=options.max_message_size,
        )
        self._dlq = DeadLetterQueues(
            self.names, self._reader, self._topology, self._tables.send, self.publish
        )
        self._counters = Counters(
            self.names,
            self._reader,
            self._topology.partitions,
            self._committed,
            self._topology.members,
            self._dead,
        )
        self._consumers: list[GroupConsumer] = []
        self._replies: list[KafkaReplies] = []
        self._opened = False
        self._quiet = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        parts = (self._producer, self._tables, self._topology, self._reader)
        quiet_client_logs()
        self._quiet = True
        try:
            for part in parts:
                await asyncio.wait_for(part.start(), self.settings.connect_timeout)
            await self._topology.ensure({self.names.bindings: TopicSpec(1, compacted=True)})
        except Exception as exc:
            await self._close_parts()
            self._restore_logs()
            error = translate(exc, mask_url(self.url), "connecting")
            if isinstance(exc, TimeoutError):
                error = BrokerUnavailable(
                    f"cannot reach Kafka at {mask_url(self.url)}: no answer within "
                    f"{self.settings.connect_timeout:g}s; check that the bootstrap servers "
                    "in the URL are up and reachable"
                )
            raise error from exc
        self._opened = True

    async def close(self) -> None:
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.stop(1.0)
        replies, self._replies = self._replies, []
        for inbox in replies:
            await inbox.close()
        if self._opened:
            self._opened = False
            await self._close_parts()
        self._restore_logs()

    def _restore_logs(self) -> None:
        if self._quiet:
            self._quiet = False
            restore_client_logs()

    async def _close_parts(self) -> None:
        for close in (
            self._producer.close,
            self._tables.close,
            self._committed.close,
            self._reader.close,
            self._topology.close,
        ):
            try:
                await close()
            except Exception as exc:
                logger.debug("closing the Kafka transport: %s", exc)

    # -- topology ----------------------------------------------------------------------------

    def _group_topics(self, spec: GroupSpec) -> dict[str, TopicSpec]:
        partitions = self.settings.partitions
        topics = {self.names.commands(spec.name): TopicSpec(partitions)}
        topics.update({t: TopicSpec(partitions) for t in self.names.retries(spec.name)})
        topics[self.names.dlq(spec.name)] = TopicSpec(1, compacted=True)
        if spec.ordered:
            topics[self.names.attempts(spec.name)] = TopicSpec(1, compacted=True)
        for pattern in spec.patterns:
            if "*" not in pattern.split(".") and "#" not in pattern.split("."):
                topics[self.names.event(pattern)] = TopicSpec(partitions)
        return topics

    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        for spec in groups:
            if spec.max_ready is not None:
                raise NotSupported(
                    f"group {spec.name!r}: max_ready is not supported on kafka:// (Kafka "
                    "cannot refuse a publish when a group's backlog is long); drop max_ready"
                )
        wanted: dict[str, TopicSpec] = {}
        for spec in groups:
            wanted.update(self._group_topics(spec))
        await self._topology.ensure(wanted)
        known = await self._bindings.groups()
        now = self.options.clock.time()
        for spec in groups:
            old = known.get(spec.name)
            if old is not None and (old.patterns, old.ordered) == (spec.patterns, spec.ordered):
                continue
            if old is None or set(spec.patterns) - set(old.patterns):
                await self._start_at_end(spec)
            await self._bindings.store(spec, old.since if old is not None else now)

    async def _start_at_end(self, spec: GroupSpec) -> None:
        """A new group (or new patterns) starts after what its event topics hold now; a
        topic made later is read from its start."""
        topics = await self._reader.topics()
        binding_topics = [
            t
            for t in topics
            if (type_ := self.names.event_type(t)) is not None
            and any(matches(p, type_) for p in spec.patterns)
        ]
        partitions = await self._topology.partitions(binding_topics)
        ends = await self._reader.ends(partitions)
        written = [tp for tp in partitions if ends.get(tp, 0) > 0]
        group = self.names.consumer_group(spec.name)
        committed = await self._committed.read(group, written)
        start = {tp: ends[tp] for tp in written if committed.get(tp) is None}
        await self._committed.commit(group, start)

    # -- publishing and consuming --------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        return await self._router.publish(messages)

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        attempts = None
        if group.ordered:
            table = CompactedTable(self._reader, self.names.attempts(group.name))
            attempts = AttemptStore(table, self._tables.send_value)
        consumer = GroupConsumer(
            group,
            deliver,
            names=self.names,
            settings=self.settings,
            clock=self.options.clock,
            bootstrap=self.address.bootstrap,
            url=mask_url(self.url),
            send_again=self._send_again,
            attempts=attempts,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def _send_again(
        self, delivery: Delivery, attempt: int, delay: float = 0.0, failure: Failure | None = None
    ) -> None:
        now = self.options.clock.time()
        first = delivery.first_failed_at
        if first is None:
            first = failure.at if failure is not None else now
        extra = {
            H_ATTEMPT: str(attempt),
            H_FIRST_FAILED: repr(first),
            H_DUE_AT: repr(now + delay),
        }
        if failure is not None:
            extra[H_LAST_FAILED] = repr(failure.at)
        topic = self.names.retry(delivery.group, pick_tier(delay))
        await self._producer.send(topic, copy_of(delivery, now, extra))

    # -- settling ----------------------------------------------------------------------------

    @staticmethod
    def _handle(delivery: Delivery) -> Handle:
        handle = delivery.handle
        if not isinstance(handle, Handle):
            raise TypeError("not a delivery of the Kafka transport")
        return handle

    async def ack(self, delivery: Delivery) -> None:
        handle = self._handle(delivery)
        await handle.consumer.settle(handle)

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        handle = self._handle(delivery)
        if handle.consumer.spec.ordered:
            await handle.consumer.wait_in_place(handle, delivery, delay)
            return
        await self._send_again(delivery, delivery.attempt + 1, delay, failure)
        await handle.consumer.settle(handle)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        handle = self._handle(delivery)
        await self._dlq.add(delivery, failure, self.options.clock.time())
        await handle.consumer.settle(handle)

    # -- dead letters --------------------------------------------------------------------------

    async def _dead(self, group: str) -> tuple[int, int]:
        """Entries of the group's DLQ, and those dead-lettered in the last five minutes."""
        entries = await self._dlq.entries(group)
        since = self.options.clock.time() - DEAD_WINDOW
        return len(entries), sum(1 for e in entries if e.last_failed_at > since)

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        return (await self._dlq.entries(group))[offset : offset + limit]

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

    # -- operations ----------------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        groups = await self._bindings.groups()
        topics = await self._reader.topics()
        out = []
        for name, binding in sorted(groups.items()):
            local = [c for c in self._consumers if c.spec.name == name]
            out.append(await self._counters.group(binding, topics, local))
        return out

    async def replay(self, group: str, since: float) -> int:
        groups = await self._bindings.groups()
        binding = groups.get(group)
        if binding is None:
            return 0
        topics = await self._reader.topics()
        main, _ = self._counters.topics_of(binding, topics)
        events = [t for t in main if t != self.names.commands(group)]
        return await replay_group(
            self._reader,
            self._producer,
            self.names.commands(group),
            await self._topology.partitions(events),
            since,
            self.options.clock.time(),
        )

    async def open_replies(self, on_reply: OnReply) -> Replies:
        inbox = KafkaReplies(self.names, self._topology, self.address.bootstrap, uuid.uuid4().hex)
        await inbox.open(on_reply)
        self._replies.append(inbox)
        return inbox

    async def send_reply(self, address: str, message: OutgoingMessage) -> None:
        await send_reply(
            self.names,
            self._topology,
            self._producer,
            address,
            message,
            self.options.clock.time(),
        )

    async def ping(self) -> None:
        await self._reader.topics()
