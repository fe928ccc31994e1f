"""The RabbitMQ objects a bus declares: quorum queues, ordered partitions, delay tiers."""

import asyncio

import pika
import pytest

from tests.support import eventually
from tests.transports.rabbitmq.conftest import one_line
from tidings import ConfigError, Context, Event

pytestmark = pytest.mark.rabbitmq


class Step(Event, type="step.done", version=1):
    key: str
    n: int


def _declare_ok(url: str, queue: str, arguments: dict | None = None):
    """Passive (or, with arguments, equivalent) declare through a plain client."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        if arguments is None:
            return channel.queue_declare(queue, passive=True).method
        return channel.queue_declare(queue, durable=True, arguments=arguments).method
    finally:
        connection.close()


async def test_quorum_queues_on_request(namespace):
    bus = namespace.bus(queue_type="quorum")
    got: list[int] = []

    @bus.subscribe("step.done", group="steps")
    async def step(event: Step) -> None:
        got.append(event.n)

    async with bus:
        await bus.publish(Step(key="a", n=1))
        await eventually(lambda: got == [1], 10, "the event through a quorum queue")
    # Redeclaring it as a quorum queue is accepted: it is one
    ok = await asyncio.to_thread(
        _declare_ok,
        namespace.node.url,
        namespace.queue("steps"),
        {"x-queue-type": "quorum", "x-tidings-group": "steps"},
    )
    assert ok.queue == namespace.queue("steps")


async def test_an_ordered_group_uses_quorum_single_active_consumer_partitions(namespace):
    bus = namespace.bus(partitions=3)
    seen: dict[str, list[int]] = {}

    @bus.subscribe("step.done", group="ledger", ordered=True, concurrency=4)
    async def step(event: Step, ctx: Context) -> None:
        seen.setdefault(event.key, []).append(event.n)

    async with bus:
        for n in range(10):
            for key in ("a", "b", "c", "d"):
                await bus.publish(Step(key=key, n=n), key=key)
        await eventually(lambda: sum(map(len, seen.values())) == 40, 15, "40 events")
        assert seen == {k: list(range(10)) for k in "abcd"}
        for n in range(3):
            ok = await asyncio.to_thread(
                _declare_ok,
                namespace.node.url,
                namespace.queue(f"ledger.p{n}"),
                {"x-queue-type": "quorum", "x-single-active-consumer": True},
            )
            assert ok.consumer_count == 1
        # there is no fourth partition
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            await asyncio.to_thread(_declare_ok, namespace.node.url, namespace.queue("ledger.p3"))


async def test_a_classic_partition_of_an_earlier_version_is_a_clear_config_error(namespace):
    # Given an ordered group's partitions as an earlier tidings declared them: classic queues
    for n in range(2):
        await asyncio.to_thread(
            _declare_ok,
            namespace.node.url,
            namespace.queue(f"ledger.p{n}"),
            {"x-queue-type": "classic", "x-single-active-consumer": True},
        )
    bus = namespace.bus(partitions=2)

    @bus.subscribe("step.done", group="ledger", ordered=True)
    async def step(event: Step) -> None:
        pass

    # When the bus starts, it says what the queue is and what to do about it
    with pytest.raises(ConfigError) as caught:
        await bus.start()
    text = one_line(caught.value)
    assert f"partition queue '{namespace.queue('ledger.p0')}' is a classic queue" in text
    assert "quorum partition queues" in text
    assert f"rabbitmqctl delete_queue --if-empty {namespace.queue('ledger')}.p0 ... .p1" in text


async def test_rates_come_from_the_management_api(namespace):
    bus = namespace.bus()

    @bus.subscribe("step.done", group="steps")
    async def step(event: Step) -> None:
        pass

    async with bus:

        async def rated() -> bool:
            await bus.publish(Step(key="a", n=0))
            stats = {s.group: s for s in await bus.stats()}["steps"]
            return bool(stats.publish_rate) and stats.ack_rate is not None

        await eventually(rated, 30, "publish and ack rates from the management API")


async def test_the_oldest_waiting_message_has_an_age(namespace):
    # Given a group with nobody consuming (a publish-only bus declared it)
    bus = namespace.bus(consume=False)

    @bus.subscribe("step.done", group="steps")
    async def step(event: Step) -> None:
        pass

    async with bus:
        await bus.declare()
        await bus.publish(Step(key="a", n=0))

        async def aged() -> bool:
            stats = {s.group: s for s in await bus.stats()}["steps"]
            return stats.ready == 1 and stats.oldest_age >= 1.0

        await eventually(aged, 30, "an age for the waiting message")


class StepUndone(Event, type="step.undone", version=1):
    key: str
    n: int


async def test_a_pattern_dropped_from_a_group_is_unbound(namespace):
    # Given a group once declared with two patterns
    old = namespace.bus(consume=False)

    @old.subscribe("step.done", group="steps")
    async def done(event: Step) -> None:
        pass

    @old.subscribe("step.undone", group="steps")
    async def undone(event: StepUndone) -> None:
        pass

    async with old:
        await old.declare()
    # When it is declared again with only one of them
    new = namespace.bus(consume=False)

    @new.subscribe("step.done", group="steps")
    async def done_only(event: Step) -> None:
        pass

    async with new:
        await new.declare()
        # Then the dropped type no longer reaches it (nothing else subscribes: unroutable)
        await new.publish(Step(key="a", n=1))
        from tidings import Unroutable

        with pytest.raises(Unroutable):
            await new.publish(StepUndone(key="a", n=1))
        with pytest.raises(Unroutable):
            await new.publish(StepUndone(key="a", n=2), delay=5.0)
