"""Publishes written straight to the socket (`_aiormq.write_now`) are confirmed and arrive in
order; it writes nothing whenever that could overtake aiormq's own frames or flow control
(a frame queued for aiormq's writer, a call holding the channel, the broker blocking the
connection); a bus's bursts take that path."""

import asyncio

import aiormq
import pytest
from pamqp import commands as spec

from tests.support import eventually
from tidings.transports.rabbitmq import _aiormq
from tidings.transports.rabbitmq._aiormq import write_now

from .conftest import Note, declare_notes, pending_publish

pytestmark = pytest.mark.rabbitmq


async def test_written_publishes_are_confirmed_and_arrive_in_order(confirm_channel):
    channel, queue = confirm_channel
    batch = [pending_publish(queue, n) for n in range(100)]
    assert write_now(channel, batch)
    answers = await asyncio.gather(*(item.outcome for item in batch))
    assert all(isinstance(a, spec.Basic.Ack) for a in answers)
    bodies = []
    for _ in range(100):
        got = await channel.basic_get(queue, no_ack=True)
        bodies.append(int(got.body))
    assert bodies == list(range(100))


async def test_nothing_is_written_while_aiormq_could_be_overtaken(confirm_channel):
    channel, queue = confirm_channel
    batch = [pending_publish(queue, n) for n in range(3)]
    # a call holding the channel
    lock = channel._Channel__lock
    await lock.acquire()
    try:
        assert not write_now(channel, batch)
    finally:
        lock.release()
    # a frame queued for aiormq's writer (the writer task has not run since)
    channel.write_queue.put_nowait(
        aiormq.abc.ChannelFrame.marshall(channel.number, [spec.Basic.Qos(prefetch_count=1)])
    )
    assert not write_now(channel, batch)
    await eventually(channel.write_queue.empty, 5, "aiormq's writer to take the frame")
    # the broker blocking the connection
    unblocked = channel.connection._Connection__connection_unblocked
    unblocked.clear()
    try:
        assert not write_now(channel, batch)
    finally:
        unblocked.set()
    # nothing of it was numbered or sent meanwhile
    assert channel.delivery_tag == 0
    assert not any(item.outcome.done() for item in batch)
    # and once free, it goes
    assert write_now(channel, batch)
    await asyncio.gather(*(item.outcome for item in batch))


async def test_a_bus_writes_long_bursts_as_they_are_made(namespace, monkeypatch):
    written: list[int] = []
    real = _aiormq.write_now

    def counting(channel, batch):
        size = len(batch)
        took = real(channel, batch)
        if took:
            written.append(size)
        return took

    monkeypatch.setattr("tidings.transports.rabbitmq._publisher.write_now", counting)
    bus = await declare_notes(namespace)
    for _ in range(3):  # the first burst finds no channel yet; the next ones do
        await asyncio.gather(*(bus.publish(Note(n=n)) for n in range(200)))
    assert written, "no burst was written as it was made"

    async def all_there() -> bool:
        return await namespace.ready("notes") == 600

    await eventually(all_there, 10, "the 600 notes in the group queue")
