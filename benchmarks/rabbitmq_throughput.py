"""RabbitMQ publish and consume throughput: tidings against raw aio-pika and FastStream.

Same node, same settings for every contender: persistent messages, publisher confirms,
``mandatory``, a durable topic exchange with one durable classic queue bound by
``bench.tick``, about 1 KiB of JSON per message, 256 publishes in flight (``asyncio.gather``
windows of 256), prefetch 256 when consuming. Each contender gets its own exchange and queue
every round, deleted after the round; the order of the contenders rotates from round to round.

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

Usage: ``python benchmarks/rabbitmq_throughput.py [--url amqp://...] [--messages 20000]
[--rounds 5] [--contenders tidings,aio-pika,faststream]``. Without ``--url`` it starts a
private RabbitMQ node (``tests/servers.py``) and stops it afterwards.
Not part of the pass/fail tests; a smoke test runs it on a tiny size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from pydantic import BaseModel

from tidings import Bus, Event

ROOT = Path(__file__).resolve().parents[1]
ROUTING_KEY = "bench.tick"
PAYLOAD = "x" * 900  # with the other fields and the envelope: about 1 KiB of JSON
WINDOW = 256
PREFETCH = 256
CONTENDERS = ("tidings", "aio-pika", "faststream")


class Tick(Event, type="bench.tick"):
    n: int
    sent_at: float
    payload: str


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

    def tick(self) -> None:
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


# -- contenders ------------------------------------------------------------------------------


class Contender:
    """One library under test, on its own exchange and queue (`name`) per round."""

    label = ""

    def __init__(self, url: str, name: str, management_url: str | None) -> None:
        self.url = url
        self.name = name
        self.management_url = management_url

    @property
    def queue(self) -> str:
        return f"{self.name}.sink"

    async def publish(self, count: int) -> float:
        raise NotImplementedError

    async def consume(self, count: int, timeout: float) -> float:
        raise NotImplementedError

    async def cleanup(self) -> None:
        """Delete this round's exchanges and queues."""
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


class Tidings(Contender):
    label = "tidings"

    def _bus(self, *, consume: bool) -> Bus:
        options: dict[str, Any] = {}
        if self.management_url:
            options["management_url"] = self.management_url
        return Bus(self.url, name=self.name, consume=consume, **options)

    async def publish(self, count: int) -> float:
        bus = self._bus(consume=False)

        @bus.subscribe(ROUTING_KEY, group="sink")
        async def sink(event: Tick) -> None:  # declares the queue; never runs here
            pass

        async with bus:
            return await in_windows(
                count,
                lambda n: bus.publish(Tick(n=n, sent_at=time.time(), payload=PAYLOAD)),
            )

    async def consume(self, count: int, timeout: float) -> float:
        bus = self._bus(consume=True)
        drain = Drain(count)

        @bus.subscribe(ROUTING_KEY, group="sink", concurrency=PREFETCH)
        async def sink(event: Tick) -> None:
            drain.tick()

        async with bus:
            return await drain.wait(timeout)

    def _queues(self) -> list[str]:
        from tidings.transports._rabbitmq_wire import TIERS, Names

        names = Names(self.name)
        tiers = [names.delay_queue("sink", tier) for tier, _ in TIERS]
        return [names.queue("sink"), names.dlq("sink"), *tiers]

    def _exchanges(self) -> list[str]:
        from tidings.transports._rabbitmq_wire import Names

        names = Names(self.name)
        return [names.exchange, names.direct, names.delay_exchange]


class AioPika(Contender):
    label = "aio-pika"

    async def publish(self, count: int) -> float:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                self.name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(exchange, ROUTING_KEY)

            async def publish_one(n: int) -> object:
                body = json.dumps(envelope(n)).encode()
                message = aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                return await exchange.publish(message, ROUTING_KEY, mandatory=True)

            return await in_windows(count, publish_one)
        finally:
            await connection.close()

    async def consume(self, count: int, timeout: float) -> float:
        connection = await aio_pika.connect(self.url)
        drain = Drain(count)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue(self.queue, durable=True)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                json.loads(message.body)
                await message.ack()
                drain.tick()

            await queue.consume(on_message)
            return await drain.wait(timeout)
        finally:
            await connection.close()


class FastStream(Contender):
    label = "FastStream"

    def _topology(self) -> tuple[Any, Any]:
        from faststream.rabbit import ExchangeType, RabbitExchange, RabbitQueue

        exchange = RabbitExchange(self.name, type=ExchangeType.TOPIC, durable=True)
        queue = RabbitQueue(self.queue, durable=True, routing_key=ROUTING_KEY)
        return exchange, queue

    async def publish(self, count: int) -> float:
        from faststream.rabbit import RabbitBroker

        exchange, queue = self._topology()
        broker = RabbitBroker(self.url, logger=None)
        await broker.connect()
        try:
            declared_exchange = await broker.declare_exchange(exchange)
            declared_queue = await broker.declare_queue(queue)
            await declared_queue.bind(declared_exchange, ROUTING_KEY)
            return await in_windows(
                count,
                lambda n: broker.publish(
                    envelope(n),
                    exchange=exchange,
                    routing_key=ROUTING_KEY,
                    persist=True,
                    mandatory=True,
                ),
            )
        finally:
            await broker.stop()

    async def consume(self, count: int, timeout: float) -> float:
        from faststream import AckPolicy
        from faststream.rabbit import Channel, RabbitBroker

        exchange, queue = self._topology()
        broker = RabbitBroker(
            self.url, logger=None, default_channel=Channel(prefetch_count=PREFETCH)
        )
        drain = Drain(count)

        @broker.subscriber(queue, exchange, ack_policy=AckPolicy.ACK)
        async def sink(body: TickEnvelope) -> None:
            drain.tick()

        await broker.start()
        try:
            return await drain.wait(timeout)
        finally:
            await broker.stop()


KINDS: dict[str, type[Contender]] = {
    "tidings": Tidings,
    "aio-pika": AioPika,
    "faststream": FastStream,
}


# -- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def broker_url(url: str | None) -> Iterator[tuple[str, str | None]]:
    """(AMQP URL, management URL): the given one, or a private node for the run."""
    if url is not None:
        yield url, None
        return
    sys.path.insert(0, str(ROOT))
    from tests.servers import RabbitNode

    base = Path(tempfile.mkdtemp(prefix="tidings-bench-rabbitmq-"))
    node = RabbitNode(base)
    try:
        node.start()
        yield node.url, node.management_url
    finally:
        node.shutdown()
        shutil.rmtree(base, ignore_errors=True)


async def one_round(
    url: str,
    management_url: str | None,
    order: list[str],
    count: int,
    run_id: str,
    round_no: int,
    results: dict[tuple[str, str], list[float]],
) -> None:
    timeout = max(60.0, count / 100)
    for kind in order:
        name = f"bench-{run_id}-{round_no}-{kind}"
        contender = KINDS[kind](url, name, management_url)
        try:
            results[(kind, "publish")].append(await contender.publish(count))
            results[(kind, "consume")].append(await contender.consume(count, timeout))
        finally:
            await contender.cleanup()
        print(
            f"  round {round_no + 1} {contender.label:<10} publish "
            f"{results[(kind, 'publish')][-1]:>9,.0f}/s  consume "
            f"{results[(kind, 'consume')][-1]:>9,.0f}/s",
            file=sys.stderr,
            flush=True,
        )


def table(results: dict[tuple[str, str], list[float]], kinds: list[str], args: Any) -> str:
    lines = [
        f"RabbitMQ throughput, {args.messages:,} messages of ~1 KiB JSON, persistent, "
        f"publisher confirms, {WINDOW} in flight, prefetch {PREFETCH}, {args.rounds} rounds "
        "(median, min-max)",
    ]
    header = f"{'contender':<11} | {'publish msg/s':<28} | {'consume msg/s':<28}"
    lines += [header, "-" * len(header)]
    for kind in kinds:
        cells = []
        for measure in ("publish", "consume"):
            values = results[(kind, measure)]
            cells.append(
                f"{statistics.median(values):>9,.0f} "
                f"({min(values):>7,.0f}-{max(values):<7,.0f})".ljust(28)
            )
        lines.append(f"{KINDS[kind].label:<11} | {cells[0]} | {cells[1]}")
    if "tidings" in kinds:
        for other in (k for k in kinds if k != "tidings"):
            ratios = [
                statistics.median(results[("tidings", m)]) / statistics.median(results[(other, m)])
                for m in ("publish", "consume")
            ]
            label = f"tidings/{KINDS[other].label}"
            lines.append(f"{label:<21} publish {ratios[0]:.2f}   consume {ratios[1]:.2f}")
    return "\n".join(line.rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing RabbitMQ (default: start a private node)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    args = parser.parse_args()
    kinds = [k.strip().lower() for k in args.contenders.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        parser.error(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    results: dict[tuple[str, str], list[float]] = {
        (k, m): [] for k in kinds for m in ("publish", "consume")
    }
    run_id = uuid.uuid4().hex[:8]
    with broker_url(args.url) as (url, management_url):
        for round_no in range(args.rounds):
            shift = round_no % len(kinds)
            order = kinds[shift:] + kinds[:shift]
            asyncio.run(
                one_round(url, management_url, order, args.messages, run_id, round_no, results)
            )
    print(table(results, kinds, args))


if __name__ == "__main__":
    main()
