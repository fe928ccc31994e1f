"""Ordered groups retry in place: several records of one partition may wait for their retry
at once (different keys that were in flight together), and each comes back, in order."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.kafka_server import FAST_OPTIONS, TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tidings import Bus, Context, Event
from tidings.contract import FixedDelay, eventually

pytestmark = pytest.mark.kafka


class Entry(Event, type="ordered.entry"):
    key: str
    n: int


async def test_two_keys_of_one_partition_waiting_at_once_both_come_back(
    kafka_broker: TansuBroker,  # noqa: F811
) -> None:
    # Given an ordered group on one partition whose first attempts at a0 and b0 run together
    # and fail
    name = f"t{uuid.uuid4().hex[:12]}"
    bus = Bus(kafka_broker.url, **{**FAST_OPTIONS, "name": name, "partitions": 1})
    runs: list[tuple[str, int, int]] = []
    both_started = asyncio.Event()

    @bus.subscribe(
        "ordered.entry",
        group="ledger",
        ordered=True,
        concurrency=4,
        retry=FixedDelay(attempts=3, base=0.3),
    )
    async def book(event: Entry, ctx: Context) -> None:
        runs.append((event.key, event.n, ctx.attempt))
        if event.n == 0 and ctx.attempt == 1:
            if sum(1 for _, n, a in runs if (n, a) == (0, 1)) == 2:
                both_started.set()
            await both_started.wait()
            raise ConnectionError("the ledger is down")

    try:
        await bus.start()
        for n in range(2):
            for key in ("a", "b"):
                await bus.publish(Entry(key=key, n=n), key=key)
        # When their retries come due
        await eventually(lambda: len(runs) >= 6, 20, "six runs")
        await asyncio.sleep(0)
    finally:
        await bus.close()
        await delete_topics(kafka_broker, name)
    # Then both were retried (attempt 2) and each key went on in order after its retry
    for key in ("a", "b"):
        mine = [(n, attempt) for k, n, attempt in runs if k == key]
        assert mine == [(0, 1), (0, 2), (1, 1)], runs
