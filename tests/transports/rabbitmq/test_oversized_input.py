"""A consumer given ``max_body`` dead-letters a longer body unread, once, and goes on."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from tests.support import eventually
from tests.transports.rabbitmq.conftest import declare_notes
from tests.transports.rabbitmq.test_hostile_input import _publish_raw, _structured
from tidings._clock import SystemClock
from tidings.transports import GroupSpec
from tidings.transports.rabbitmq._consumer import Handle, RabbitConsumer

pytestmark = pytest.mark.rabbitmq


async def test_a_body_over_max_body_is_dead_lettered_and_the_next_one_is_handled(namespace):
    # Given group notes declared, and a consumer of it with a 200-byte limit
    bus = await declare_notes(namespace)
    connection = await aio_pika.connect_robust(namespace.node.url)
    received: list[bytes] = []
    consumer: RabbitConsumer

    async def deliver(delivery) -> None:
        received.append(delivery.body)
        assert isinstance(delivery.handle, Handle)
        consumer.ack(delivery.handle)

    async def never_delayed(*_: object) -> None:
        raise AssertionError("nothing here is delayed")

    consumer = RabbitConsumer(
        GroupSpec("notes", ("note.kept",), concurrency=1),
        deliver,
        [namespace.queue("notes")],
        connection=lambda: connection,
        delay_again=never_delayed,
        forget=lambda _: None,
        clock=SystemClock(),
        max_body=200,
    )
    try:
        await consumer.start()
        # When a 1000-byte body arrives, then a small one
        big = _structured("big", 1).replace(b'"data"', b'"pad":"' + b"x" * 900 + b'","data"')
        small = _structured("small", 2)
        raw = [("big", big, "application/cloudevents+json", {})]
        raw.append(("small", small, "application/cloudevents+json", {}))
        await asyncio.to_thread(_publish_raw, namespace.node.url, namespace.queue("notes"), raw)
        # Then the small one is handled and the big one is in the DLQ once, with the reason
        await eventually(lambda: received == [small], timeout=10.0)
        dlq = bus.dead_letters("notes")

        async def dead() -> bool:
            return len(await dlq.list()) == 1

        await eventually(dead, timeout=10.0)
        (entry,) = await dlq.list()
        assert entry.event_id == "big"
        assert "max_message_size" in entry.reason and str(len(big)) in entry.reason
    finally:
        await consumer.stop(1.0)
        await connection.close()
    assert received == [small]
