"""Publishes and acks of one event-loop turn leave together; each publish still gets its own
answer from the broker, and nothing is lost or duplicated on the way."""

import asyncio

import pytest

from tests.support import eventually
from tidings import Unroutable
from tidings.transports.rabbitmq._publisher import BatchPublisher

from .conftest import Note, Stray, declare_notes

pytestmark = pytest.mark.rabbitmq


def _count_writes(monkeypatch) -> list[int]:
    """Record the batch size of every write the publisher makes."""
    sizes: list[int] = []
    write = BatchPublisher._write

    async def counted(self, batch):
        sizes.append(len(batch))
        await write(self, batch)

    monkeypatch.setattr(BatchPublisher, "_write", counted)
    return sizes


async def test_a_burst_leaves_in_few_writes_and_each_publish_gets_its_own_answer(
    namespace, monkeypatch
):
    # Given a group bound to note.kept only
    sizes = _count_writes(monkeypatch)
    bus = await declare_notes(namespace)
    # When 200 publishes run concurrently, every other one of a type no group receives
    outcomes = await asyncio.gather(
        *(bus.publish(Note(n=n) if n % 2 == 0 else Stray(n=n)) for n in range(200)),
        return_exceptions=True,
    )
    # Then the routable ones returned their ids and the others raised Unroutable, each its own
    routed = [o for o in outcomes[0::2]]
    strays = [o for o in outcomes[1::2]]
    assert all(isinstance(o, str) for o in routed), routed[:3]
    assert all(isinstance(o, Unroutable) for o in strays), strays[:3]
    assert len(set(routed)) == 100
    # And they left in far fewer writes than messages (the routed ones followed, once
    # confirmed, by their copies to the retained log's stream, packed in a few messages)
    assert 200 < sum(sizes) <= 220, sizes
    assert len(sizes) <= 20, sizes
    # And exactly the 100 routable messages wait in the queue
    await eventually(
        lambda: _ready_is(namespace, "notes", 100), 10, "100 messages in the group queue"
    )


async def _ready_is(namespace, group: str, expected: int) -> bool:
    return await namespace.ready(group) == expected


async def test_bodies_over_a_frame_and_batches_over_the_write_limit_arrive_whole(namespace):
    # Given a worker collecting notes of about 300 KiB (RabbitMQ's frames hold 128 KiB)
    got: dict[int, str] = {}
    worker = namespace.bus()

    @worker.subscribe("note.kept", group="notes")
    async def keep(event: Note) -> None:
        got[event.n] = event.text

    texts = {n: chr(ord("a") + n) * (300_000 + n) for n in range(8)}
    async with worker:
        # When eight of them (over 2 MiB, more than one write) are published at once
        await worker.publish_many([Note(n=n, text=t) for n, t in texts.items()])
        # Then each arrives whole
        await eventually(lambda: len(got) == 8, 30, "eight big notes")
    assert got == texts


async def test_a_cancelled_publish_leaves_the_rest_of_its_burst_alone(namespace):
    bus = await declare_notes(namespace)
    tasks = [asyncio.create_task(bus.publish(Note(n=n))) for n in range(50)]
    await asyncio.sleep(0)
    tasks[10].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[10], asyncio.CancelledError)
    others = results[:10] + results[11:]
    assert all(isinstance(r, str) for r in others), others[:3]
    # the cancelled one may or may not have left already; the 49 others are there
    assert await namespace.ready("notes") in (49, 50)


async def test_acks_queued_at_shutdown_are_sent_before_the_channel_closes(namespace):
    # Given 300 notes handled by a worker that is then closed gracefully
    bus = await declare_notes(namespace)
    await bus.publish_many([Note(n=n) for n in range(300)])
    handled: list[int] = []
    worker = namespace.bus()

    @worker.subscribe("note.kept", group="notes", concurrency=64)
    async def keep(event: Note) -> None:
        handled.append(event.n)

    async with worker:
        await eventually(lambda: len(handled) == 300, 30, "300 notes handled")
    # Then nothing is left to deliver again: every ack reached the broker
    assert sorted(handled) == list(range(300))
    assert await namespace.ready("notes") == 0
