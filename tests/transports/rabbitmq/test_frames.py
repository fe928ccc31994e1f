"""The publish frames tidings writes itself (`_frames`) are byte for byte the ones pamqp
writes, for any properties and headers; what AMQP cannot carry is refused before anything
is written."""

from datetime import UTC, datetime

import pytest
from aiormq.abc import ChannelFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from tidings.transports.rabbitmq._frames import publish_frames

short = st.text(max_size=40)
text_values = st.text(max_size=60)
other_values = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
    st.floats(allow_nan=False, width=32),
)
headers = st.one_of(
    st.none(),
    st.dictionaries(st.text(min_size=1, max_size=20), text_values, max_size=6),
    st.dictionaries(
        st.text(min_size=1, max_size=20), st.one_of(text_values, other_values), max_size=6
    ),
)
properties = st.builds(
    spec.Basic.Properties,
    content_type=st.one_of(st.none(), short),
    content_encoding=st.one_of(st.none(), short),
    headers=headers,
    delivery_mode=st.one_of(st.none(), st.sampled_from([1, 2])),
    priority=st.one_of(st.none(), st.integers(min_value=0, max_value=9)),
    correlation_id=st.one_of(st.none(), short),
    reply_to=st.one_of(st.none(), short),
    expiration=st.one_of(st.none(), st.integers(min_value=1, max_value=10**6).map(str)),
    message_id=st.one_of(st.none(), short),
    timestamp=st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=2**33).map(lambda s: datetime.fromtimestamp(s, UTC)),
    ),
    message_type=st.one_of(st.none(), short),
    user_id=st.one_of(st.none(), short),
    app_id=st.one_of(st.none(), short),
)


def pamqp_bytes(
    channel: int, exchange: str, key: str, body: bytes, props: spec.Basic.Properties, limit: int
) -> bytes:
    """What aiormq's own ``basic_publish`` writes (its body-splitting rule included)."""
    if not body:
        bodies: list[ContentBody] = []
    elif len(body) < limit:
        bodies = [ContentBody(body)]
    else:
        bodies = [ContentBody(body[i : i + limit]) for i in range(0, len(body), limit)]
    frames = [
        spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=True),
        ContentHeader(properties=props, body_size=len(body)),
        *bodies,
    ]
    return ChannelFrame.marshall(channel_number=channel, frames=frames).payload


@settings(max_examples=300, deadline=None)
@given(
    channel=st.integers(min_value=1, max_value=2047),
    exchange=st.sampled_from(["", "shop", "shop.direct", "a-b_c:d"]),
    key=short,
    body=st.binary(max_size=300),
    props=properties,
    limit=st.integers(min_value=16, max_value=400),
)
def test_the_frames_are_the_bytes_pamqp_writes(channel, exchange, key, body, props, limit):
    ours = b"".join(publish_frames(channel, exchange, key, body, props, limit))
    assert ours == pamqp_bytes(channel, exchange, key, body, props, limit)


def test_an_empty_body_is_a_header_of_size_zero_and_no_body_frame():
    frames = b"".join(publish_frames(1, "x", "k", b"", spec.Basic.Properties(), 1000))
    # method frame, then a content header frame, and nothing after its end octet
    assert frames.count(b"\xce") == 2
    assert frames[-1:] == b"\xce"


@pytest.mark.parametrize(
    "props",
    [
        spec.Basic.Properties(message_id="x" * 256),
        spec.Basic.Properties(headers={"h": object()}),
    ],
    ids=["short string over 255 bytes", "header of an unknown type"],
)
def test_what_amqp_cannot_carry_is_refused(props):
    with pytest.raises(TypeError):
        publish_frames(1, "x", "k", b"body", props, 1000)
