"""Publishing: every record acknowledged by all in-sync replicas (``acks=all``) before
`publish` returns.

The producer runs without idempotence (``enable_idempotence=False``): tansu, the broker the
tests run on, does not implement the idempotent producer (InitProducerId). Without it a
record whose acknowledgement was lost may be written twice when the client retries; the
consumers' idempotency (a dedupe store or the inbox) absorbs such a copy, as it absorbs any
redelivery.

Routing: a message goes to the topic of its type (or of its group when it is sent to one,
or to the retry topic of each target group when it is delayed) only when a stored binding
takes it; one no group takes is not written anywhere, so replay never brings it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from ..._clock import Clock
from ..._exceptions import BrokerUnavailable, MessageTooLarge
from .._message import OutgoingMessage
from .._routing import matches
from ._admin import TopicSpec, Topology
from ._bindings import Binding, Bindings
from ._errors import translate
from ._names import Names, pick_tier
from ._wire import Record, to_record

__all__ = ["Producer", "Router"]

OVERHEAD = 64 * 1024
"""Room for headers and the batch framing around the largest message a bus accepts."""


class Producer:
    """The transport's aiokafka producer; `send` returns once the broker acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        url: str,
        max_message_size: int,
        timeout: float,
        max_batch_size: int = 16384,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._settings = {
            "bootstrap_servers": bootstrap,
            "acks": "all",
            "enable_idempotence": False,
            "max_request_size": max_message_size + OVERHEAD,
            "request_timeout_ms": int(timeout * 1000),
            "linger_ms": 0,
            "max_batch_size": max_batch_size,
        }
        self._client: AIOKafkaProducer | None = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._client is None:
            raise BrokerUnavailable(f"the Kafka transport for {self._url} is not open")
        return self._client

    async def start(self) -> None:
        # aiokafka clients belong to the running event loop: made here, not in __init__.
        self._client = AIOKafkaProducer(**self._settings)
        await self._client.start()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    async def send_many(self, records: Sequence[tuple[str, Record]]) -> None:
        """Send every record, then wait for every acknowledgement."""
        try:
            futures = [
                await self._producer.send(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    timestamp_ms=record.timestamp_ms,
                )
                for topic, record in records
            ]
            if futures:
                await asyncio.wait_for(asyncio.gather(*futures), self._timeout)
        except Exception as exc:
            raise translate(exc, self._url, "publishing") from exc

    async def send(self, topic: str, record: Record) -> None:
        await self.send_many([(topic, record)])

    async def send_value(self, topic: str, key: bytes, value: bytes | None) -> None:
        """A keyed record of an internal table (a binding, an attempt count)."""
        await self.send(topic, Record(key, value, [], None))


class Router:
    """Publishes messages to the topics their bindings route them to."""

    def __init__(
        self,
        names: Names,
        producer: Producer,
        topology: Topology,
        bindings: Bindings,
        clock: Clock,
        *,
        partitions: int,
        max_message_size: int,
    ) -> None:
        self._names = names
        self._producer = producer
        self._topology = topology
        self._bindings = bindings
        self._clock = clock
        self._partitions = partitions
        self._max = max_message_size

    @staticmethod
    def _targets(message: OutgoingMessage, groups: dict[str, Binding]) -> list[str]:
        if message.group is not None:
            return [message.group] if message.group in groups else []
        return [
            name
            for name, binding in groups.items()
            if any(matches(pattern, message.type) for pattern in binding.patterns)
        ]

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        """Publish the routable messages; per message, whether a group takes it."""
        for message in messages:
            if len(message.body) > self._max:
                raise MessageTooLarge(
                    f"message {message.id or message.type!r} is {len(message.body)} bytes, "
                    f"over max_message_size ({self._max} bytes)"
                )
        groups = self._bindings.cached() or await self._bindings.groups()
        targets = [self._targets(m, groups) for m in messages]
        if not all(targets):  # a group another process declared since we last looked
            groups = await self._bindings.groups(refresh=True)
            targets = [self._targets(m, groups) for m in messages]
        now = self._clock.time()
        records: list[tuple[str, Record]] = []
        events: dict[str, TopicSpec] = {}
        for message, chosen in zip(messages, targets, strict=True):
            if not chosen:
                continue
            record = to_record(message, now)
            if message.delay > 0:
                tier = pick_tier(message.delay)
                records.extend((self._names.retry(group, tier), record) for group in chosen)
            elif message.group is not None:
                records.append((self._names.commands(message.group), record))
            else:
                topic = self._names.event(message.type)
                events[topic] = TopicSpec(self._partitions)
                records.append((topic, record))
        await self._topology.ensure(events)
        await self._producer.send_many(records)
        return [bool(chosen) for chosen in targets]
