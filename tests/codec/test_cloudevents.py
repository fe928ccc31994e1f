"""CloudEvents envelope: encoding in both modes, decoding those and foreign messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tidings import Envelope
from tidings._codec.cloudevents import decode, decode_with_mode, encode, foreign_id
from tidings._codec.envelope import DecodeError


def _envelope() -> Envelope:
    return Envelope(
        id="e-1",
        source="tidings://host/shop",
        type="order.placed",
        time=datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC),
        dataversion=2,
        correlationid="c-1",
        causationid="k-1",
        partitionkey="user-7",
    )


def test_structured_round_trip_keeps_every_attribute() -> None:
    body, ctype, headers = encode(_envelope(), b'{"id":"user-field","total":"9.90"}', "structured")
    assert ctype == "application/cloudevents+json" and headers == {}
    doc = json.loads(body)
    assert doc["specversion"] == "1.0" and doc["id"] == "e-1"
    assert doc["time"] == "2026-11-22T10:00:00Z"
    # the data keeps a user field named "id" apart from the envelope id
    assert doc["data"] == {"id": "user-field", "total": "9.90"}
    envelope, data, mode = decode_with_mode(
        routing_key="order.placed", body=body, content_type=ctype, headers={}, message_id="e-1"
    )
    assert mode == "structured"
    assert envelope == _envelope()
    assert data == {"id": "user-field", "total": "9.90"}


def test_binary_mode_puts_attributes_in_ce_headers() -> None:
    body, ctype, headers = encode(_envelope(), b'{"a":1}', "binary")
    assert body == b'{"a":1}' and ctype == "application/json"
    assert headers["ce-id"] == "e-1" and headers["ce-type"] == "order.placed"
    assert headers["ce-specversion"] == "1.0"
    envelope, data, mode = decode_with_mode(
        routing_key="order.placed", body=body, content_type=ctype, headers=headers, message_id=None
    )
    assert mode == "binary"
    assert envelope.id == "e-1" and envelope.dataversion == 2 and data == {"a": 1}


def test_foreign_json_takes_type_from_routing_key_and_id_from_message_id() -> None:
    envelope, data = decode(
        routing_key="user.created",
        body=b'{"email": "a@example.com"}',
        content_type="application/json",
        headers={},
        message_id="m-9",
    )
    assert (envelope.type, envelope.id, data) == ("user.created", "m-9", {"email": "a@example.com"})


def test_foreign_id_without_message_id_is_a_stable_hash() -> None:
    kwargs = dict(routing_key="user.created", body=b"{}", content_type=None, headers={})
    first, _ = decode(message_id=None, **kwargs)  # type: ignore[arg-type]
    second, _ = decode(message_id=None, **kwargs)  # type: ignore[arg-type]
    assert first.id == second.id == foreign_id("user.created", b"{}")
    assert foreign_id("user.created", b"{}") != foreign_id("user.deleted", b"{}")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"not json", None, "not JSON"),
        (b"\xff\xfe", None, "not JSON"),
        (b'{"specversion": "1.0", "type": "x"}', "application/cloudevents+json", "'id'"),
        (b"[1, 2]", "application/cloudevents+json", "not a JSON object"),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}',
            None,
            "RFC 3339",
        ),
    ],
)
def test_undecodable_bodies_raise_a_clear_error(
    body: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(routing_key="t", body=body, content_type=content_type, headers={}, message_id=None)


def test_event_ids_are_unique_version_4_uuids() -> None:
    import uuid

    from tidings._codec.envelope import new_event_id

    ids = {new_event_id() for _ in range(5000)}
    assert len(ids) == 5000
    for value in list(ids)[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and str(parsed) == value


def test_a_forked_child_draws_fresh_ids() -> None:
    import os

    from tidings._codec.envelope import new_event_id

    new_event_id()  # the pool now holds unused bytes the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 100).decode()
    assert child_id != new_event_id()
