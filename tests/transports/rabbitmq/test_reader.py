"""The bulk frame reader (`_reader`) hands aiormq the frames pamqp would: the same objects for
deliveries, content headers, bodies and confirms, pamqp's own reading for anything else, and
frames cut anywhere across socket reads come out whole. Only tidings' connections use it."""

import asyncio

import aiormq.connection
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.heartbeat import Heartbeat

from tidings.transports.rabbitmq._frames import publish_frames
from tidings.transports.rabbitmq._reader import BulkReceiver, bulk_reading, decode_frames

from .test_frames import properties


def same(ours: object, theirs: object) -> bool:
    """Equal as pamqp objects: the same class and the same value in every slot."""
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, ContentBody):
        return ours.value == theirs.value  # type: ignore[attr-defined]
    names = getattr(ours, "__slots__", None) or vars(ours)
    for name in names:
        a, b = getattr(ours, name, None), getattr(theirs, name, None)
        if name == "properties":
            if a != b:
                return False
        elif a != b:
            return False
    return True


def pamqp_read(data: bytes) -> list[tuple[int, int, object]]:
    out, at = [], 0
    while at < len(data):
        used, channel, frame = pamqp_frame.unmarshal(data[at:])
        out.append((used, channel, frame))
        at += used
    return out


def delivery_bytes(channel, tag, redelivered, exchange, key, body, props, limit) -> bytes:
    deliver = spec.Basic.Deliver(
        consumer_tag="ctag-1", delivery_tag=tag, redelivered=redelivered,
        exchange=exchange, routing_key=key,
    )  # fmt: skip
    method = pamqp_frame.marshal(deliver, channel)
    # A delivery's header and bodies are a publish's, after its method frame.
    rest = b"".join(publish_frames(channel, exchange, key, body, props, limit)[3:])
    return method + rest


@settings(max_examples=200, deadline=None)
@given(
    channel=st.integers(min_value=1, max_value=2047),
    tag=st.integers(min_value=1, max_value=2**63 - 1),
    redelivered=st.booleans(),
    exchange=st.sampled_from(["", "shop", "shop.direct"]),
    key=st.text(max_size=40),
    body=st.binary(max_size=300),
    props=properties,
    limit=st.integers(min_value=16, max_value=400),
)
def test_deliveries_read_as_pamqp_reads_them(
    channel, tag, redelivered, exchange, key, body, props, limit
):
    data = delivery_bytes(channel, tag, redelivered, exchange, key, body, props, limit)
    ours, used = decode_frames(data)
    assert used == len(data)
    theirs = pamqp_read(data)
    assert [(u, c) for u, c, _ in ours] == [(u, c) for u, c, _ in theirs]
    assert all(same(a, b) for (_, _, a), (_, _, b) in zip(ours, theirs, strict=True))


def test_confirms_heartbeats_and_other_methods_read_as_pamqp_reads_them():
    frames = [
        (1, spec.Basic.Ack(delivery_tag=7, multiple=True)),
        (1, spec.Basic.Nack(delivery_tag=8)),
        (0, Heartbeat()),
        (3, spec.Channel.Close(reply_code=404, reply_text="NOT_FOUND", class_id=50, method_id=10)),
        (2, spec.Basic.CancelOk(consumer_tag="c")),
    ]
    data = b"".join(pamqp_frame.marshal(f, ch) for ch, f in frames)
    ours, used = decode_frames(data)
    assert used == len(data)
    theirs = pamqp_read(data)
    assert [(u, c) for u, c, _ in ours] == [(u, c) for u, c, _ in theirs]
    assert all(same(a, b) for (_, _, a), (_, _, b) in zip(ours, theirs, strict=True))


async def read_all(chunks: list[bytes]) -> list[object]:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    receiver = BulkReceiver(reader)
    got = []
    with pytest.raises(StopAsyncIteration):
        while True:
            got.append(await receiver.get_frame())
    return got


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
async def test_frames_cut_across_reads_come_out_whole(cuts):
    props = spec.Basic.Properties(message_id="m", headers={"a": "b"}, delivery_mode=2)
    data = b"".join(
        delivery_bytes(1, n + 1, False, "x", f"k{n}", b"b" * (n * 37), props, 128) for n in range(6)
    )
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    got = await read_all(chunks)
    assert [(u, c) for u, c, _ in got] == [(u, c) for u, c, _ in pamqp_read(data)]


async def test_a_connection_closed_inside_a_frame_is_a_connection_error():
    data = pamqp_frame.marshal(spec.Basic.Ack(delivery_tag=1), 1)
    reader = asyncio.StreamReader()
    reader.feed_data(data[:-3])
    reader.feed_eof()
    with pytest.raises(aiormq.exceptions.AMQPConnectionError, match="incomplete frame"):
        await BulkReceiver(reader).get_frame()


async def test_only_connections_made_inside_bulk_reading_read_in_bulk():
    reader = asyncio.StreamReader()
    with bulk_reading():
        inside = aiormq.connection.FrameReceiver(reader)
    outside = aiormq.connection.FrameReceiver(reader)
    assert isinstance(inside, BulkReceiver)
    assert not isinstance(outside, BulkReceiver)


@pytest.mark.rabbitmq
async def test_the_transport_reads_in_bulk_and_other_aiormq_users_do_not(namespace):
    # Given a bus on RabbitMQ and a plain aiormq connection in the same process
    bus = namespace.bus(consume=False)
    async with bus:
        plain = await aiormq.connect(namespace.node.url)
        try:
            # Then the bus's connection reads in bulk and the plain one as aiormq does
            receivers = [
                type(frame.f_locals["frame_receiver"])
                for task in asyncio.all_tasks()
                if (frame := task.get_coro().cr_frame) is not None
                and "frame_receiver" in frame.f_locals
            ]
            assert BulkReceiver in receivers
            assert any(r is not BulkReceiver for r in receivers)
        finally:
            await plain.close()
