"""The decoder raises only `DecodeError`, whatever the body, headers or content type: a
message it cannot read is dead-lettered with a reason, never a crash of the consumer."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings._codec.cloudevents import decode_with_mode
from tidings._codec.envelope import DecodeError

_FAST = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))

_ATTRIBUTES = st.sampled_from(
    [
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "datacontenttype",
        "subject",
        "dataversion",
        "correlationid",
        "partitionkey",
        "data",
        "data_base64",
        "x-ext",
    ]
)
_HOSTILE_NUMBERS = st.sampled_from([math.inf, -math.inf, math.nan, 1.5, -1, 10**30, True])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
_TIMES = st.sampled_from(
    ["", "yesterday", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2026-13-01"]
)
_CONTENT_TYPES = st.sampled_from(
    [None, "", "application/cloudevents+json", "application/json; charset=utf-8", "text/plain"]
)
_CE_HEADERS = st.dictionaries(
    st.sampled_from(["ce-id", "ce-source", "ce-type", "ce-time", "ce-dataversion", "x-other"]),
    st.text(max_size=12) | st.sampled_from(["1e999", "nan", "-1", "9" * 5000]),
    max_size=6,
)


def _decodes_or_refuses(body: bytes, content_type: str | None, headers: dict[str, str]) -> None:
    with contextlib.suppress(DecodeError):
        decode_with_mode(
            routing_key="r.k",
            body=body,
            content_type=content_type,
            headers=headers,
            message_id=None,
        )


@_FAST
@given(st.binary(max_size=80), _CONTENT_TYPES, _CE_HEADERS)
def test_arbitrary_bytes_decode_or_raise_decode_error(body, content_type, headers):
    _decodes_or_refuses(body, content_type, headers)


@_FAST
@given(
    st.dictionaries(_ATTRIBUTES, _JSON | _HOSTILE_NUMBERS | _TIMES, max_size=10),
    _CONTENT_TYPES,
    _CE_HEADERS,
)
def test_arbitrary_json_objects_decode_or_raise_decode_error(attrs, content_type, headers):
    # json.dumps writes inf as "Infinity"; "1e999" is what another producer would send
    body = json.dumps(attrs).replace("-Infinity", "-1e999").replace("Infinity", "1e999")
    _decodes_or_refuses(body.encode(), content_type, headers)


_VALID = {"specversion": "1.0", "id": "e-1", "source": "s", "type": "t.x", "data": {}}


@pytest.mark.parametrize(
    "raw", ["1e999", "-1e999", "NaN", "1.5", "-1", "true", '"1e999"', "[1]", "1" + "0" * 30]
)
def test_a_dataversion_that_is_not_a_version_is_a_decode_error(raw):
    body = json.dumps(_VALID)[:-1] + f', "dataversion": {raw}}}'
    with pytest.raises(DecodeError, match="dataversion"):
        decode_with_mode(
            routing_key="t.x",
            body=body.encode(),
            content_type="application/cloudevents+json",
            headers={},
            message_id=None,
        )


@pytest.mark.parametrize("raw", ["2", "2.0", '"2"'])
def test_integral_dataversions_are_read(raw):
    body = json.dumps(_VALID)[:-1] + f', "dataversion": {raw}}}'
    envelope, _, _ = decode_with_mode(
        routing_key="t.x",
        body=body.encode(),
        content_type="application/cloudevents+json",
        headers={},
        message_id=None,
    )
    assert envelope.dataversion == 2


def test_a_time_at_the_edge_of_the_calendar_is_a_decode_error():
    attrs = dict(_VALID, time="0001-01-01T00:00:00+23:59")
    with pytest.raises(DecodeError, match="time"):
        decode_with_mode(
            routing_key="t.x",
            body=json.dumps(attrs).encode(),
            content_type="application/cloudevents+json",
            headers={},
            message_id=None,
        )
