"""The transport's one use of aiokafka's internals (`_aiokafka`): supported by the installed
aiokafka, and the public fallbacks give the same counts when it is not."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from tests.kafka_server import FAST_OPTIONS, TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tidings.contract import group_stats
from tidings.transports import GroupSpec, OutgoingMessage, open_transport
from tidings.transports.kafka import _aiokafka

pytestmark = pytest.mark.kafka


async def test_the_installed_aiokafka_has_the_internals(kafka_broker: TansuBroker) -> None:  # noqa: F811
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id="probe-x")
    await consumer.start()
    try:
        assert _aiokafka.supported(consumer)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("internals", [True, False], ids=["internals", "fallback"])
async def test_ready_counts_with_and_without_the_internals(
    kafka_broker: TansuBroker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    internals: bool,
) -> None:
    monkeypatch.setattr(_aiokafka, "_disabled", not internals)
    name = f"t{uuid.uuid4().hex[:12]}"
    t = open_transport(kafka_broker.url, {"name": name, **FAST_OPTIONS})
    await t.open()
    try:
        await t.declare([GroupSpec("orders", ("order.*",))])
        messages = [OutgoingMessage(f"m-{n}", "order.placed", b"{}") for n in range(4)]
        assert await t.publish(messages) == [True] * 4
        stats = await group_stats(t, "orders")
        assert (stats.ready, stats.scheduled, stats.in_flight) == (4, 0, 0)
    finally:
        await t.close()
        await delete_topics(kafka_broker, name)
