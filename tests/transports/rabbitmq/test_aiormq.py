"""The one module using aiormq's internals (`_aiormq`): folding acknowledgements into
``multiple`` acks never acks a tag the broker let go of and in the end acknowledges every
delivery exactly once; and without the channel state it needs, publishing and acknowledging
take the public fallback and still work."""

import asyncio
import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import eventually
from tidings import Unroutable
from tidings.transports.rabbitmq import _aiormq
from tidings.transports.rabbitmq._aiormq import ChannelAcks

from .conftest import Note, Stray, declare_notes


class Broker:
    """RabbitMQ's unacked list of one channel: an ack must name a tag it still holds
    (``multiple`` also lets go of every tag below it)."""

    def __init__(self, delivered: int) -> None:
        self.unacked = list(range(1, delivered + 1))

    def ack(self, tag: int, multiple: bool) -> None:
        assert tag in self.unacked, f"unknown delivery tag {tag}"
        if multiple:
            self.unacked = [t for t in self.unacked if t > tag]
        else:
            self.unacked.remove(tag)


@st.composite
def flushes(draw):
    """Tags 1..n settled in any order, cut into flushes of any size."""
    n = draw(st.integers(min_value=1, max_value=60))
    order = draw(st.permutations(list(range(1, n + 1))))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=n - 1))) if n > 1 else set())
    bounds = [0, *cuts, n]
    return n, [list(order[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


@given(flushes())
def test_every_delivery_is_acknowledged_once_and_no_ack_names_a_released_tag(case):
    n, batches = case
    broker, acks = Broker(n), ChannelAcks()
    for batch in batches:
        for frame in acks.frames(batch):
            broker.ack(frame.delivery_tag, frame.multiple)
    assert broker.unacked == []


def test_settling_in_order_takes_one_frame_per_flush():
    acks = ChannelAcks()
    frames = acks.frames([3, 1, 2])
    assert [(f.delivery_tag, f.multiple) for f in frames] == [(3, True)]
    frames = acks.frames([4, 6])
    assert [(f.delivery_tag, f.multiple) for f in frames] == [(4, True), (6, False)]
    frames = acks.frames([5])
    assert [(f.delivery_tag, f.multiple) for f in frames] == [(5, True)]


def test_a_delivery_never_settled_holds_the_run_back():
    acks = ChannelAcks()
    # tag 1 still being handled (or left for the broker to requeue at shutdown)
    frames = acks.frames([2, 3])
    assert [(f.delivery_tag, f.multiple) for f in frames] == [(2, False), (3, False)]
    frames = acks.frames([1])
    assert [(f.delivery_tag, f.multiple) for f in frames] == [(1, True)]


@pytest.mark.rabbitmq
async def test_without_the_channel_state_publishes_and_acks_take_the_public_api(
    namespace, monkeypatch
):
    # Given an aiormq whose channels lack the state the fast paths use
    asked: list[object] = []

    def unsupported(channel: object) -> bool:
        asked.append(channel)
        return False

    monkeypatch.setattr(_aiormq, "supported", unsupported)
    bus = await declare_notes(namespace)
    # When 50 notes are published concurrently, and one event no group takes
    ids = await asyncio.gather(*(bus.publish(Note(n=n)) for n in range(50)))
    with pytest.raises(Unroutable):
        await bus.publish(Stray(n=1))
    # Then each publish got its own confirm and the 50 wait in the queue
    assert len(set(ids)) == 50
    assert await namespace.ready("notes") == 50
    # And when a worker handles them all and closes
    handled: list[int] = []
    worker = namespace.bus()

    @worker.subscribe("note.kept", group="notes", concurrency=16)
    async def keep(event: Note) -> None:
        handled.append(event.n)

    async with worker:
        await eventually(lambda: len(handled) == 50, 30, "50 notes handled")
    # Then every ack reached the broker: nothing comes back
    assert sorted(handled) == list(range(50))
    assert await namespace.ready("notes") == 0
    # And the fallback was chosen for the publishing and the consuming channels alike
    assert len({id(channel) for channel in asked}) >= 2


@pytest.mark.rabbitmq
async def test_publishing_leaves_nothing_behind_on_the_channel(namespace):
    # Given a bus that has published once (its channels open)
    bus = await declare_notes(namespace)
    await bus.publish(Note(n=0))

    def futures() -> int:
        gc.collect()
        return sum(isinstance(o, asyncio.Future) for o in gc.get_objects())

    before = futures()
    # When it publishes 300 more, one at a time
    for n in range(300):
        await bus.publish(Note(n=n))
    # Then no future per publish is left alive (a check of the channel's state once made a
    # close observer per publish, kept until the channel closed)
    assert futures() - before < 30
