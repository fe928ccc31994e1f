"""The RabbitMQ contenders: tidings, raw aio-pika and FastStream, set up alike.

Same node, same settings for every contender: persistent messages, publisher confirms,
``mandatory``, a durable topic exchange with one durable classic queue bound by
``bench.tick``, about 1 KiB of JSON per message, 256 publishes in flight (``asyncio.gather``
windows of 256), prefetch 256 when consuming. Each contender gets its own exchange and queue
(`Contender.name`), deleted after use.

What each contender does, per message:

- **tidings** -- publish: ``await bus.publish(Tick(...))`` (a pydantic `Event`; tidings builds
  the CloudEvents envelope, serialises it to JSON, waits for the confirm). Consume: a
  subscriber with ``concurrency=256`` (prefetch 256) whose handler takes the validated
  ``Tick`` and does nothing; tidings acknowledges after the handler.
- **aio-pika** -- publish: ``json.dumps(envelope).encode()`` of a dict shaped like the
  CloudEvents envelope tidings sends (id, source, type, time, data with the same fields),
  then ``exchange.publish(Message(..., delivery_mode=PERSISTENT), "bench.tick",
  mandatory=True)`` on a ``publisher_confirms=True`` channel. Consume: ``queue.consume`` on a
  channel with prefetch 256; the callback does ``json.loads(body)`` and ``await
  message.ack()``.
- **FastStream** -- publish: ``broker.publish(envelope_dict, exchange=..., routing_key=...,
  persist=True, mandatory=True)`` (its default channel has publisher confirms on; FastStream
  serialises the dict to JSON). Consume: ``@broker.subscriber(queue, exchange,
  ack_policy=AckPolicy.ACK)`` on a ``Channel(prefetch_count=256)``, the handler takes the
  body validated into a pydantic model and does nothing; FastStream acknowledges after it.
  ``logger=None``: FastStream otherwise logs two lines per message, which tidings does not.

Publish throughput is timed from the first publish to the last confirm (connecting and
declaring excluded); consume throughput from the first message handled to the last
(``(N - 1) / elapsed``), on a queue pre-filled by the contender's own publish phase.
Latency at a fixed rate (`Contender.publish_at_rate`) publishes one message at a time at a
fixed rate, while the contender's own consumer runs in another process
(``python -m benchmarks.consumer``, `Contender.serve`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
from pydantic import BaseModel

from tidings import Bus

from ._load import DEFAULT_PAYLOAD, TYPE, WINDOW, Tick, tick
from ._measure import at_rate

ROOT = Path(__file__).resolve().parents[1]
ROUTING_KEY = TYPE
PAYLOAD = "x" * DEFAULT_PAYLOAD  # with the other fields and the envelope: about 1 KiB of JSON
PREFETCH = 256
CONTENDERS = ("tidings", "aio-pika", "faststream")
T = TypeVar("T")


class TickData(BaseModel):
    n: int
    sent_at: float
    payload: str


class TickEnvelope(BaseModel):
    """What the FastStream handler validates the body into (the envelope and its data)."""

    specversion: str
    id: str
    source: str
    type: str
    time: str
    datacontenttype: str
    data: TickData


def envelope(n: int) -> dict[str, Any]:
    """The dict the raw contenders encode: shaped like the envelope tidings sends."""
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "bench",
        "type": ROUTING_KEY,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {"n": n, "sent_at": time.time(), "payload": PAYLOAD},
    }


async def in_windows(count: int, publish_one: Callable[[int], Awaitable[object]]) -> float:
    """Publish `count` messages, `WINDOW` in flight at a time; return messages per second."""
    start = time.perf_counter()
    for first in range(0, count, WINDOW):
        await asyncio.gather(*(publish_one(n) for n in range(first, min(first + WINDOW, count))))
    return count / (time.perf_counter() - start)


class Drain:
    """Counts handled messages; `rate` is (N - 1) / (last - first)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.handled = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def tick(self, sent_at: float = 0.0) -> None:
        now = time.perf_counter()
        if self.handled == 0:
            self.first = now
        self.handled += 1
        if self.handled >= self.expected:
            self.last = now
            self.done.set()

    async def wait(self, timeout: float) -> float:
        await asyncio.wait_for(self.done.wait(), timeout)
        return (self.expected - 1) / max(self.last - self.first, 1e-9)


PublishOne = Callable[[int], Awaitable[object]]
Drive = Callable[[PublishOne], Awaitable[T]]  # given how to publish message n, publish some
Handle = Callable[[float], None]  # called with each message's sent_at, in its handler


class Contender(abc.ABC):
    """One client under test, on its own exchange and queue (`name`): its publish and
    consume throughput, and the clean-up of its topology."""

    label = ""

    def __init__(self, url: str, name: str, management_url: str | None) -> None:
        self.url = url
        self.name = name
        self.management_url = management_url

    @property
    def queue(self) -> str:
        return f"{self.name}.sink"

    @abc.abstractmethod
    async def publish(self, count: int) -> float:
        """Messages/s publishing `count` messages, `WINDOW` in flight."""

    @abc.abstractmethod
    async def consume(self, count: int, timeout: float) -> float:
        """Messages/s consuming `count` messages from the queue."""

    async def cleanup(self) -> None:
        """Delete this contender's exchanges and queues."""
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            for queue in self._queues():
                await channel.queue_delete(queue)
            for exchange in self._exchanges():
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()

    def _queues(self) -> list[str]:
        return [self.queue]

    def _exchanges(self) -> list[str]:
        return [self.name]


class PythonContender(Contender):
    """A Python library: it says how it publishes (`_publishing`: connect, declare, hand a
    one-message publish to a driver) and how it consumes (`_consuming`: connect, consume
    calling a handler per message until a condition); the measures, latency at a fixed rate
    included, are built from those two."""

    @abc.abstractmethod
    async def _publishing(self, drive: Drive[T]) -> T:
        """Connect, declare, and run ``drive(publish_one)``."""

    @abc.abstractmethod
    async def _consuming(self, handle: Handle, until: Callable[[], Awaitable[T]]) -> T:
        """Connect and consume, calling `handle` per message, until ``until()`` returns."""

    async def publish(self, count: int) -> float:
        """Messages/s publishing `count` messages, `WINDOW` in flight."""
        return await self._publishing(lambda publish_one: in_windows(count, publish_one))

    async def publish_at_rate(self, rate: float, count: int) -> list[float]:
        """Publish `count` messages at `rate`/s; each one's confirm latency in seconds."""
        return await self._publishing(lambda publish_one: at_rate(rate, count, publish_one))

    async def consume(self, count: int, timeout: float) -> float:
        """Messages/s consuming `count` messages from the queue."""
        drain = Drain(count)
        return await self._consuming(drain.tick, lambda: drain.wait(timeout))

    async def serve(self, handle: Handle, ready: Callable[[], None]) -> None:
        """Consume until cancelled, calling ``ready()`` once the consumer is attached."""

        async def forever() -> None:
            ready()
            await asyncio.Event().wait()

        await self._consuming(handle, forever)


class Tidings(PythonContender):
    label = "tidings"

    def _bus(self, *, consume: bool) -> Bus:
        options: dict[str, Any] = {}
        if self.management_url:
            options["management_url"] = self.management_url
        return Bus(self.url, name=self.name, consume=consume, **options)

    async def _publishing(self, drive: Drive[T]) -> T:
        bus = self._bus(consume=False)

        @bus.subscribe(ROUTING_KEY, group="sink")
        async def sink(event: Tick) -> None:  # declares the queue; never runs here
            pass

        async with bus:
            return await drive(lambda n: bus.publish(tick(n, PAYLOAD)))

    async def _consuming(self, handle: Handle, until: Callable[[], Awaitable[T]]) -> T:
        bus = self._bus(consume=True)

        @bus.subscribe(ROUTING_KEY, group="sink", concurrency=PREFETCH)
        async def sink(event: Tick) -> None:
            handle(event.sent_at)

        async with bus:
            return await until()

    def _queues(self) -> list[str]:
        from tidings.transports.rabbitmq._wire import TIERS, Names

        names = Names(self.name)
        tiers = [names.delay_queue("sink", tier) for tier, _ in TIERS]
        return [names.queue("sink"), names.dlq("sink"), *tiers, f"{self.name}.:log"]

    def _exchanges(self) -> list[str]:
        from tidings.transports.rabbitmq._wire import Names

        names = Names(self.name)
        return [names.exchange, names.direct, names.delay_exchange]


class AioPika(PythonContender):
    label = "aio-pika"

    async def _declare(self, channel: aio_pika.abc.AbstractChannel) -> Any:
        exchange = await channel.declare_exchange(
            self.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.bind(exchange, ROUTING_KEY)
        return exchange

    async def _publishing(self, drive: Drive[T]) -> T:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await self._declare(channel)

            async def publish_one(n: int) -> object:
                body = json.dumps(envelope(n)).encode()
                message = aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                return await exchange.publish(message, ROUTING_KEY, mandatory=True)

            return await drive(publish_one)
        finally:
            await connection.close()

    async def _consuming(self, handle: Handle, until: Callable[[], Awaitable[T]]) -> T:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            await self._declare(channel)
            queue = await channel.declare_queue(self.queue, durable=True)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                body = json.loads(message.body)
                handle(body["data"]["sent_at"])
                await message.ack()

            await queue.consume(on_message)
            return await until()
        finally:
            await connection.close()


class FastStream(PythonContender):
    label = "FastStream"

    def _topology(self) -> tuple[Any, Any]:
        from faststream.rabbit import ExchangeType, RabbitExchange, RabbitQueue

        exchange = RabbitExchange(self.name, type=ExchangeType.TOPIC, durable=True)
        queue = RabbitQueue(self.queue, durable=True, routing_key=ROUTING_KEY)
        return exchange, queue

    async def _publishing(self, drive: Drive[T]) -> T:
        from faststream.rabbit import RabbitBroker

        exchange, queue = self._topology()
        broker = RabbitBroker(self.url, logger=None)
        await broker.connect()
        try:
            declared_exchange = await broker.declare_exchange(exchange)
            declared_queue = await broker.declare_queue(queue)
            await declared_queue.bind(declared_exchange, ROUTING_KEY)
            return await drive(
                lambda n: broker.publish(
                    envelope(n),
                    exchange=exchange,
                    routing_key=ROUTING_KEY,
                    persist=True,
                    mandatory=True,
                )
            )
        finally:
            await broker.stop()

    async def _consuming(self, handle: Handle, until: Callable[[], Awaitable[T]]) -> T:
        from faststream import AckPolicy
        from faststream.rabbit import Channel, RabbitBroker

        exchange, queue = self._topology()
        broker = RabbitBroker(
            self.url, logger=None, default_channel=Channel(prefetch_count=PREFETCH)
        )

        @broker.subscriber(queue, exchange, ack_policy=AckPolicy.ACK)
        async def sink(body: TickEnvelope) -> None:
            handle(body.data.sent_at)

        await broker.start()
        try:
            return await until()
        finally:
            await broker.stop()


KINDS: dict[str, type[PythonContender]] = {
    "tidings": Tidings,
    "aio-pika": AioPika,
    "faststream": FastStream,
}


@contextlib.contextmanager
def broker_url(url: str | None) -> Iterator[tuple[str, str | None]]:
    """(AMQP URL, management URL): the given one, or a private node for the block."""
    if url is not None:
        yield url, None
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.servers import RABBITMQ_SERVER, RabbitNode

    if not os.access(RABBITMQ_SERVER, os.X_OK):
        raise SystemExit(
            f"{RABBITMQ_SERVER} is not installed and no RabbitMQ URL was given: "
            "run `bash scripts/install-servers.sh` (or pass the URL of a running node)"
        )
    base = Path(tempfile.mkdtemp(prefix="tidings-bench-rabbitmq-"))
    node = RabbitNode(base)
    try:
        node.start()
        yield node.url, node.management_url
    finally:
        node.shutdown()
        shutil.rmtree(base, ignore_errors=True)
