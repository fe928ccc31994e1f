"""Folding acknowledgements into ``multiple`` acks never acks a tag the broker let go of,
and in the end acknowledges every delivery exactly once."""

from hypothesis import given
from hypothesis import strategies as st

from tidings.transports.rabbitmq._acks import ChannelAcks


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
