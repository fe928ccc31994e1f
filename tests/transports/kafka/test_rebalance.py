"""Rebalances drain in-flight work: a worker joining a busy group takes partitions only after
their handlers in the first worker finished and were committed, so nothing runs twice (even
without idempotency) and each key keeps its order."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict

import pytest

from tests.kafka_server import FAST_OPTIONS, TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tidings import Bus, Context, Event
from tidings.contract import eventually

pytestmark = pytest.mark.kafka

KEYS = [f"k{n}" for n in range(6)]
PER_KEY = 5


class Step(Event, type="rebalance.step"):
    key: str
    n: int


async def test_a_worker_joining_mid_stream_gets_partitions_after_their_work_settled(
    kafka_broker: TansuBroker,  # noqa: F811
) -> None:
    name = f"t{uuid.uuid4().hex[:12]}"
    options = {**FAST_OPTIONS, "name": name, "partitions": 6}
    runs: list[tuple[str, str, int, float, float]] = []  # worker, key, n, start, end

    def worker(label: str) -> Bus:
        bus = Bus(kafka_broker.url, **options)

        @bus.subscribe("rebalance.step", group="steps", ordered=True, concurrency=6)
        async def step(event: Step, ctx: Context) -> None:
            start = time.monotonic()
            await asyncio.sleep(0.2)  # the work in flight while the group rebalances
            runs.append((label, event.key, event.n, start, time.monotonic()))

        return bus

    first, second = worker("first"), worker("second")
    try:
        # Given a worker busy with events of six keys
        await first.start()
        for n in range(PER_KEY):
            for key in KEYS:
                await first.publish(Step(key=key, n=n), key=key)
        await eventually(lambda: len(runs) >= 3, 20, "the first worker at work")
        # When a second worker joins the group while handlers run
        await second.start()
        await eventually(lambda: len(runs) >= len(KEYS) * PER_KEY, 30, "every event")
        await asyncio.sleep(0)
    finally:
        await second.close()
        await first.close()
        await delete_topics(kafka_broker, name)
    # Then every event ran once, and each key's events ran in order, one at a time
    assert Counter((key, n) for _, key, n, _, _ in runs) == {
        (key, n): 1 for key in KEYS for n in range(PER_KEY)
    }
    by_key: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for _, key, n, start, end in runs:
        by_key[key].append((start, end, n))
    for key, steps in by_key.items():
        steps.sort()
        assert [n for *_, n in steps] == list(range(PER_KEY)), key
        assert all(a[1] <= b[0] for a, b in zip(steps, steps[1:], strict=False)), key
    # And the joining worker took part
    assert {label for label, *_ in runs} == {"first", "second"}
