"""Our messages as Kafka records, and Kafka records as deliveries.

Wire format: the CloudEvents Kafka protocol binding (as the ``cloudevents`` SDK implements
it): structured mode sends the whole event as the value with the ``content-type`` header
``application/cloudevents+json``; binary mode sends the attributes as ``ce_`` headers (our
codec's ``ce-`` headers, renamed on the way out and back on the way in). The ordering key is
the record key, so one key stays on one partition.

Our bookkeeping travels in ``tidings-*`` headers (the message id, its type for topics that
do not name it, retry attempt and times, a reply address), never in the data, and is
stripped from the headers a consumer sees. A foreign record (no ``tidings-type``) takes its
type from its topic's name, and has no id: the pipeline derives a stable one from its body.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._message import Delivery, OutgoingMessage
from ._names import Names

__all__ = [
    "H_ATTEMPT",
    "H_DUE_AT",
    "H_FIRST_FAILED",
    "H_LAST_FAILED",
    "Record",
    "due_at",
    "header_number",
    "to_delivery",
    "to_record",
]

H_PREFIX = "tidings-"
H_ID = "tidings-id"
H_TYPE = "tidings-type"
H_ATTEMPT = "tidings-attempt"
H_FIRST_FAILED = "tidings-first-failed-at"
H_LAST_FAILED = "tidings-last-failed-at"
H_DUE_AT = "tidings-due-at"
H_REPLAYED = "tidings-replayed"
H_REPLY_TO = "tidings-reply-to"
CONTENT_TYPE = "content-type"
_MAX_NUMBER = 253_402_300_799.0
"""The last second of the year 9999 (epoch seconds): no bookkeeping number is larger."""
_MAX_ATTEMPT = 1_000_000

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Record:
    """What the producer sends: key, value, headers and timestamp (milliseconds)."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None


def _wire_name(name: str) -> str:
    return "ce_" + name[3:] if name.startswith("ce-") else name


def _our_name(name: str) -> str:
    return "ce-" + name[3:] if name.startswith("ce_") else name


def to_record(
    message: OutgoingMessage, now: float, extra: Mapping[str, str] | None = None
) -> Record:
    """The record for `message`; `extra` bookkeeping headers (attempt, due time) win over
    the message's own."""
    headers: dict[str, str] = {_wire_name(k): v for k, v in message.headers.items()}
    headers[CONTENT_TYPE] = message.content_type
    if message.id:
        headers[H_ID] = message.id
    headers[H_TYPE] = message.type
    if message.replayed:
        headers[H_REPLAYED] = "1"
    if message.reply_to:
        headers[H_REPLY_TO] = message.reply_to
    if message.delay > 0:
        headers[H_DUE_AT] = repr(now + message.delay)
    headers.update(extra or {})
    published = message.published_at or now
    return Record(
        key=message.key.encode() if message.key is not None else None,
        value=message.body,
        headers=[(k, v.encode()) for k, v in headers.items()],
        timestamp_ms=int(published * 1000),
    )


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value is not None else ""


def header_map(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """A record's headers as text (the last of repeated names wins)."""
    return {name: _text(value) for name, value in headers}


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A bookkeeping header as a finite number from 0 to the year 9999; None when absent or
    unreadable (a foreign producer's header is never trusted into a delay or a count)."""
    text = headers.get(name)
    if text is None or len(text) > 64:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and 0 <= number <= _MAX_NUMBER else None


def due_at(headers: Sequence[tuple[str, bytes]]) -> float | None:
    """When a record of a retry topic comes due (None: at once)."""
    for name, value in headers:
        if name == H_DUE_AT:
            return header_number({name: _text(value)}, name)
    return None


def to_delivery(
    group: str,
    names: Names,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    handle: object,
) -> Delivery:
    """The `Delivery` of a record fetched from one of `group`'s topics."""
    text = header_map(headers)
    attempt = header_number(text, H_ATTEMPT)
    type_ = text.get(H_TYPE)
    if type_ is None:
        type_ = names.event_type(topic) or ""
    return Delivery(
        group=group,
        id=text.get(H_ID) or None,
        type=type_,
        body=value or b"",
        content_type=text.get(CONTENT_TYPE),
        headers={
            _our_name(k): v
            for k, v in text.items()
            if not k.startswith(H_PREFIX) and k != CONTENT_TYPE
        },
        key=key.decode("utf-8", "replace") if key is not None else None,
        attempt=int(attempt) if attempt and 1 <= attempt <= _MAX_ATTEMPT else 1,
        replayed=text.get(H_REPLAYED) == "1",
        first_failed_at=header_number(text, H_FIRST_FAILED),
        handle=handle,
        reply_to=text.get(H_REPLY_TO) or None,
    )


def copy_of(delivery: Delivery, now: float, extra: Mapping[str, str]) -> Record:
    """A record carrying `delivery` again (a retry, a dead letter), with `extra` headers."""
    message = OutgoingMessage(
        id=delivery.id or "",
        type=delivery.type,
        body=delivery.body,
        content_type=delivery.content_type or "application/json",
        headers=delivery.headers,
        key=delivery.key,
        replayed=delivery.replayed,
        reply_to=delivery.reply_to,
    )
    return to_record(message, now, extra)
