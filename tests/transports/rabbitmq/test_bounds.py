"""``max_ready`` on RabbitMQ: quorum queues with ``x-max-length`` and reject-publish; a
publish past the bound is `QueueFull` naming the full groups (the others have the event);
classic queues and a changed bound are clear `ConfigError`s."""

from __future__ import annotations

import asyncio

import pika
import pytest

from tests.support import eventually
from tests.transports.rabbitmq.conftest import one_line
from tidings import ConfigError, Context, Event, QueueFull

pytestmark = pytest.mark.rabbitmq


class Order(Event, type="order.placed", version=1):
    n: int


def _arguments(url: str, queue: str, arguments: dict) -> None:
    """An equivalent declare of `queue` with `arguments` (the broker refuses other ones)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(queue, durable=True, arguments=arguments)
    finally:
        connection.close()


async def test_a_bound_on_classic_queues_is_a_config_error(namespace):
    bus = namespace.bus(consume=False)

    @bus.subscribe("order.placed", group="orders", max_ready=10)
    async def take(event: Order) -> None:
        pass

    with pytest.raises(ConfigError) as caught:
        await bus.start()
    text = one_line(caught.value)
    assert "group 'orders' has max_ready=10" in text
    assert "quorum queues" in text and "queue_type='quorum'" in text


def _bounded_bus(namespace, *, max_ready: int = 3, consume: bool = False, **options):
    bus = namespace.bus(consume=consume, queue_type="quorum", **options)

    @bus.subscribe("order.placed", group="orders", max_ready=max_ready)
    async def take(event: Order) -> None:
        pass

    @bus.subscribe("order.placed", group="audit")
    async def audit(event: Order) -> None:
        pass

    return bus


async def test_a_publish_past_the_bound_names_the_full_group_and_reaches_the_others(namespace):
    # Given a bounded group and an unbounded one on the same events, nobody consuming
    bus = _bounded_bus(namespace)
    async with bus:
        await bus.declare()
        # (its queue is a quorum queue refusing publishes past the bound)
        await asyncio.to_thread(
            _arguments,
            namespace.node.url,
            namespace.queue("orders"),
            {"x-queue-type": "quorum", "x-max-length": 2, "x-overflow": "reject-publish"},
        )
        accepted = [await bus.publish(Order(n=n)) for n in range(3)]
        # When one more event is published
        with pytest.raises(QueueFull) as caught:
            await bus.publish(Order(n=3), id="refused-1")
        # Then it is refused at once, naming the full group, and the other group has it
        error = caught.value
        assert error.groups == ["orders"]
        text = one_line(error)
        assert "group 'orders'" in text and "'refused-1'" in text
        assert "same id is absorbed by idempotent groups" in text
        assert await namespace.ready("orders") == len(accepted)
        assert await namespace.ready("audit") == len(accepted) + 1
        # And a publisher that declared none of the groups learns the same (the management
        # API lists the bounded queues)
        other = namespace.bus(consume=False)
        async with other:
            with pytest.raises(QueueFull) as caught:
                await other.publish(Order(n=4))
        assert caught.value.groups == ["orders"]


async def test_an_ordered_bounded_group_shares_the_bound_among_its_partitions(namespace):
    # Given an ordered group of two partitions bounded at four: two per partition
    bus = namespace.bus(consume=False, queue_type="quorum", partitions=2)

    @bus.subscribe("order.placed", group="ledger", ordered=True, max_ready=4)
    async def book(event: Order) -> None:
        pass

    async with bus:
        await bus.declare()
        # When one key's events fill its partition
        await bus.publish(Order(n=0), key="k")
        await bus.publish(Order(n=1), key="k")
        # Then the next one of that key is refused, naming the group
        with pytest.raises(QueueFull) as caught:
            await bus.publish(Order(n=2), key="k")
        assert caught.value.groups == ["ledger"]
        stats = {s.group: s for s in await bus.stats()}
        assert stats["ledger"].ready == 2


async def test_changing_the_bound_of_an_existing_group_is_a_config_error(namespace):
    first = _bounded_bus(namespace, max_ready=3)
    async with first:
        await first.declare()
    changed = _bounded_bus(namespace, max_ready=5)
    with pytest.raises(ConfigError) as caught:
        await changed.start()
    text = one_line(caught.value)
    assert f"queue '{namespace.queue('orders')}' exists with another 'x-max-length'" in text
    assert "keep the earlier max_ready" in text


async def test_retries_of_a_full_group_wait_in_its_returns_lane_counted_as_ready(namespace):
    from tidings.contract import FixedDelay

    def worker(runs: list[tuple[str, int]], *, consume: bool = True):
        bus = namespace.bus(queue_type="quorum", consume=consume)

        retry = FixedDelay(attempts=2, base=0.3)

        @bus.subscribe("order.placed", group="orders", max_ready=2, retry=retry)
        async def take(event: Order, ctx: Context) -> None:
            runs.append((ctx.event_id, ctx.attempt))
            if ctx.attempt == 1 and event.n < 2:
                raise ConnectionError("later")

        return bus

    # Given two events whose first attempts failed on a worker that then stopped
    first_runs: list[tuple[str, int]] = []
    first, producer = worker(first_runs), worker([], consume=False)
    async with producer:
        await first.start()
        failed = [await producer.publish(Order(n=n)) for n in range(2)]
        await eventually(lambda: len(first_runs) == 2, 10, "two failed attempts")
        await first.close()
        # When the group fills up with new events while their retries wait
        fresh = [await producer.publish(Order(n=n)) for n in range(2, 4)]
        with pytest.raises(QueueFull):
            await producer.publish(Order(n=9))

        # Then the retries come due all the same, into the returns lane, ready
        async def all_ready() -> bool:
            stats = {s.group: s for s in await producer.stats()}["orders"]
            return (stats.ready, stats.scheduled) == (4, 0)

        await eventually(all_ready, 10, "the retries back, counted as ready")
        # And a worker takes all four, the retried ones as their second attempt
        runs: list[tuple[str, int]] = []
        async with worker(runs):
            await eventually(lambda: len(runs) == 4, 10, "all four events")
        assert sorted(runs) == sorted([(i, 2) for i in failed] + [(i, 1) for i in fresh])
