"""Retries and dead letters on RabbitMQ: delay-tier queues, the DLQ, replay, ordered groups."""

import asyncio
import json
import subprocess
import sys

import pika
import pytest

from tests.support import eventually
from tidings import Context, Event, Retry

pytestmark = pytest.mark.rabbitmq


class Job(Event, type="job.run", version=1):
    n: int


async def test_a_poison_message_is_dead_lettered_after_exactly_attempts_and_replayed(namespace):
    # Given a group where job 3 always fails, three attempts allowed
    bus = namespace.bus()
    runs: dict[int, list[int]] = {}
    poison = {3}

    @bus.subscribe("job.run", group="workers", retry=Retry(attempts=3, base=0.05), concurrency=4)
    async def work(event: Job, ctx: Context) -> None:
        runs.setdefault(event.n, []).append(ctx.attempt)
        if event.n in poison:
            raise ValueError(f"job {event.n} is poison")

    async with bus:
        # When ten jobs are published, the poison one among them
        for n in range(10):
            await bus.publish(Job(n=n))
        dlq = bus.dead_letters("workers")

        async def dead() -> bool:
            return len(await dlq.list()) == 1

        await eventually(dead, 15, "the poison job in the DLQ")
        await eventually(lambda: len(runs) == 10, 15, "every other job")
        # Then it ran exactly three times, the others once, and it sits in <bus>.workers.dlq
        assert runs[3] == [1, 2, 3]
        assert all(runs[n] == [1] for n in range(10) if n != 3)
        (entry,) = await dlq.list()
        assert entry.attempts == 3 and entry.exception_type == "builtins.ValueError"
        assert "job 3 is poison" in entry.reason and "ValueError" in entry.traceback
        assert entry.first_failed_at <= entry.last_failed_at
        depth = await _depth(namespace, namespace.queue("workers.dlq"))
        assert depth == 1
        stats = {s.group: s for s in await bus.stats()}
        assert stats["workers"].dead == 1
        # And the CLI lists it with its reason
        listed = await _cli(namespace, "dlq", "list", "workers", "--json")
        [row] = json.loads(listed)
        assert row["entry_id"] == entry.entry_id and "job 3 is poison" in row["reason"]
        # When the cause is fixed and `tidings dlq replay` puts it back
        poison.clear()
        assert "replayed 1" in await _cli(namespace, "dlq", "replay", "workers", "--all")
        # Then it runs again from attempt 1, and the DLQ is empty
        await eventually(lambda: runs[3] == [1, 2, 3, 1], 10, "the replayed job")
        assert await dlq.list() == []
        assert await _depth(namespace, namespace.queue("workers.dlq")) == 0


async def _cli(namespace, *args: str) -> str:
    """Run the `tidings` command against this test's namespace; return its output."""
    url_args = ["--url", namespace.node.url, "--name", namespace.name]
    command = [sys.executable, "-m", "tidings", *args, *url_args]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def _depth(namespace, queue: str) -> int:
    def declare() -> int:
        connection = pika.BlockingConnection(pika.URLParameters(namespace.node.url))
        try:
            ok = connection.channel().queue_declare(queue, passive=True)
            return int(ok.method.message_count)
        finally:
            connection.close()

    return await asyncio.to_thread(declare)


async def test_listing_the_dlq_does_not_consume_it_and_keeps_its_order(namespace):
    bus = namespace.bus()
    from tidings import Permanent

    @bus.subscribe("job.run", group="workers", concurrency=1)
    async def work(event: Job) -> None:
        raise Permanent(f"no {event.n}")

    async with bus:
        for n in range(5):
            await bus.publish(Job(n=n))
        dlq = bus.dead_letters("workers")

        async def five() -> bool:
            return len(await dlq.list()) == 5

        await eventually(five, 10, "five dead letters")
        first = [e.entry_id for e in await dlq.list()]
        for _ in range(3):
            assert [e.entry_id for e in await dlq.list()] == first
        assert [e.data["n"] for e in await dlq.list()] == [0, 1, 2, 3, 4]
        assert await _depth(namespace, namespace.queue("workers.dlq")) == 5
        # Purging by id removes only those
        assert await dlq.purge([first[1], first[3]]) == 2
        assert [e.entry_id for e in await dlq.list()] == [first[0], first[2], first[4]]


async def test_retries_go_through_the_delay_tier_queues(namespace):
    # Given a handler failing once with a ~1 s back-off
    from tidings.contract import FixedDelay

    bus = namespace.bus()
    runs: list[int] = []

    @bus.subscribe("job.run", group="workers", retry=FixedDelay(attempts=2, base=1.0))
    async def work(event: Job, ctx: Context) -> None:
        runs.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("later")

    async with bus:
        await bus.publish(Job(n=1))
        await eventually(lambda: runs == [1], 10, "the first attempt")

        # Then the message waits in the group's 1 s tier queue, counted as scheduled
        async def waiting() -> bool:
            return await _depth(namespace, namespace.queue("workers.delay.1s")) == 1

        await eventually(waiting, 5, "the message in the 1s delay queue")
        assert {s.group: s for s in await bus.stats()}["workers"].scheduled == 1
        await eventually(lambda: runs == [1, 2], 10, "the retry")
