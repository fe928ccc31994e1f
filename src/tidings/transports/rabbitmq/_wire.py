"""RabbitMQ naming, delay tiers, and the mapping between our messages and AMQP messages.

Wire format: the CloudEvents RabbitMQ binding as the ``cloudevents`` SDK 2.x implements it
(``cloudevents.core.bindings.rabbitmq``): structured mode puts the whole event in the body
(``application/cloudevents+json``); binary mode puts the attributes in ``ce-`` headers and
``datacontenttype`` in the ``content_type`` property — the encoding `tidings._codec` already
produces. AMQP properties (``message_id``, ``type``, ``app_id``, ``timestamp``,
``correlation_id``, ``content_type``) are mirrored so plain AMQP clients can route and log.

Our bookkeeping travels in ``tidings-*`` headers, never in the data, and is stripped from the
headers a consumer sees, as is the broker's ``x-delivery-count`` (a quorum queue's count of a
message's returns, which `incoming_to_delivery` adds to the attempt; a copy never carries it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from ..._exceptions import ConfigError
from .._message import Delivery, OutgoingMessage

__all__ = [
    "H_ATTEMPT",
    "H_DELIVERY_COUNT",
    "H_DUE_AT",
    "H_FIRST_FAILED",
    "H_HASH",
    "H_KEY",
    "H_PREFIX",
    "TIERS",
    "BadBookkeeping",
    "Names",
    "incoming_to_delivery",
    "pick_tier",
    "to_amqp",
]

H_PREFIX = "tidings-"
H_KEY = "tidings-key"
H_HASH = "tidings-hash"
H_ATTEMPT = "tidings-attempt"
H_FIRST_FAILED = "tidings-first-failed-at"
H_LAST_FAILED = "tidings-last-failed-at"
H_DUE_AT = "tidings-due-at"
H_REPLAYED = "tidings-replayed"
H_ROUTING_KEY = "tidings-routing-key"
H_DELIVERY_COUNT = "x-delivery-count"
"""Set by a quorum queue on a message it delivers again: how many times it was returned
(a consumer's channel closed, its process died, or a nack with requeue)."""
H_NO_ID = "tidings-no-id"
"""Set on a message published without an id: aiormq fills an empty ``message_id`` with a
random one, which must not become the id of a foreign message (its id is a stable hash)."""

TIERS: tuple[tuple[str, float], ...] = (
    ("50ms", 0.05),
    ("200ms", 0.2),
    ("1s", 1.0),
    ("5s", 5.0),
    ("20s", 20.0),
    ("1m", 60.0),
    ("5m", 300.0),
    ("20m", 1200.0),
    ("1h", 3600.0),
)
"""Delay tiers: one TTL queue per tier and group (a per-message TTL only expires at the head
of a queue, so one queue of mixed delays would hold short delays behind long ones)."""

PERSISTENT = 2
"""``delivery_mode`` of a message the broker writes to disk."""

DUE_SLACK = 0.02
"""A delivery arriving this close to its due time is handled rather than delayed again."""


def pick_tier(remaining: float) -> tuple[str, float]:
    """The largest tier not longer than `remaining` (the smallest for shorter delays).

    A message carries its due time; on arrival, what is left is delayed again, so long
    delays hop through the tiers and end within `DUE_SLACK` plus one small tier of the due
    time, however long they are.
    """
    chosen = TIERS[0]
    for tier in TIERS:
        if tier[1] <= remaining + 1e-9:
            chosen = tier
    return chosen


@dataclass(frozen=True, slots=True)
class Names:
    """Exchange and queue names of one bus (`prefix` is the bus name)."""

    prefix: str

    @property
    def exchange(self) -> str:
        """Topic exchange events are published to."""
        return self.prefix

    @property
    def direct(self) -> str:
        """Direct exchange: routing key = group name leads to that group (sends, retries)."""
        return f"{self.prefix}.direct"

    @property
    def delay_exchange(self) -> str:
        """Topic exchange for delayed publishes: routing key ``<tier>.<event type>``."""
        return f"{self.prefix}.delay"

    def queue(self, group: str) -> str:
        return f"{self.prefix}.{group}"

    def partition(self, group: str, n: int) -> str:
        return f"{self.prefix}.{group}.p{n}"

    def hash_exchange(self, group: str) -> str:
        return f"{self.prefix}.{group}.hash"

    def delay_queue(self, group: str, tier: str) -> str:
        return f"{self.prefix}.{group}.delay.{tier}"

    def dlq(self, group: str) -> str:
        return f"{self.prefix}.{group}.dlq"

    def returns(self, group: str) -> str:
        """The returns lane of a bounded unordered group: its retries and delayed events
        come back here, outside the group queue's bound."""
        return f"{self.prefix}.{group}.returns"


def dlq_of(group: str, queue: str, *, partitioned: bool) -> str:
    """The DLQ of `group`, given one of its queues (a partition ``<bus>.<group>.p<n>`` of an
    ordered group, else ``<bus>.<group>``)."""
    if partitioned:
        queue = queue.rsplit(".", 1)[0]
    return Names(queue[: -len(group) - 1]).dlq(group)


def _correlation_id(message: OutgoingMessage) -> str | None:
    value = message.headers.get("ce-correlationid")
    # Parse a structured body only when it can hold the attribute (a json.loads per publish
    # otherwise): the key appears literally in the JSON unless written with "\\u" escapes.
    body = message.body
    if (
        value is None
        and message.content_type.startswith("application/cloudevents")
        and (b"correlationid" in body or b"\\u" in body)
    ):
        try:
            parsed = json.loads(message.body)
        except ValueError:
            return None
        value = parsed.get("correlationid") if isinstance(parsed, dict) else None
    return str(value) if value is not None else None


@functools.lru_cache(maxsize=4)
def _timestamp(second: int) -> datetime:
    """The AMQP timestamp of a message published in `second` (the same few seconds for a
    burst: one datetime each)."""
    return datetime.fromtimestamp(second, UTC)


def to_amqp(
    message: OutgoingMessage, app_id: str, now: float, extra: Mapping[str, Any] | None = None
) -> spec.Basic.Properties:
    """The AMQP properties of the persistent message for `message`, with our bookkeeping
    headers (the body is `message.body` as it is); `now` is the transport clock's time.

    Raises:
        ConfigError: the id is longer than an AMQP message id can be (255 bytes).
    """
    if len(message.id) > 63 and len(message.id.encode()) > 255:
        raise ConfigError(
            f"event id {message.id[:40]!r}... is {len(message.id.encode())} bytes; RabbitMQ "
            "carries message ids of at most 255 bytes: publish it with a shorter id"
        )
    headers: dict[str, Any] = dict(message.headers)
    if message.key is not None:
        headers[H_KEY] = message.key
    # What an ordered group's consistent-hash exchange hashes on: the key, else the id.
    headers[H_HASH] = message.key if message.key is not None else message.id
    if message.replayed:
        headers[H_REPLAYED] = "1"
    published = message.published_at or now
    if message.group is not None or message.delay > 0:
        # Routed by group name or delay tier: the event type no longer is the routing key.
        # (A topic publish keeps its routing key through exchange-to-exchange bindings.)
        headers[H_ROUTING_KEY] = message.type
    if not message.id:
        headers[H_NO_ID] = "1"
    if message.delay > 0:
        headers[H_DUE_AT] = repr(now + message.delay)
    if extra:
        headers.update(extra)
    return spec.Basic.Properties(
        content_type=message.content_type,
        headers=headers,
        delivery_mode=PERSISTENT,
        correlation_id=_correlation_id(message),
        message_id=message.id or None,
        timestamp=_timestamp(int(published)),
        message_type=message.type,
        app_id=app_id,
        reply_to=message.reply_to,
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def raw_headers(message: AbstractIncomingMessage) -> dict[str, Any]:
    return dict(message.headers or {})


def user_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Headers a consumer sees: everything but our ``tidings-*`` bookkeeping and the broker's
    delivery count, as text."""
    return {
        k: _text(v)
        for k, v in headers.items()
        if not k.startswith(H_PREFIX) and k != H_DELIVERY_COUNT
    }


class BadBookkeeping(ValueError):
    """A message's ``tidings-*`` bookkeeping headers cannot be read (an attempt count or a
    time that is NaN, infinite, negative or not a number): it is dead-lettered as it is,
    with this reason, instead of being run or delayed on made-up numbers."""


_MAX_ATTEMPT = 1_000_000
_MAX_NUMBER = 253_402_300_799
"""The last second of the year 9999 (epoch seconds): no bookkeeping number is larger."""


def _header_number(headers: Mapping[str, Any], name: str) -> float | None:
    """A bookkeeping header as a finite, non-negative number (None when absent)."""
    value = headers.get(name)
    if value is None:
        return None
    number: float | None = None
    text = "" if isinstance(value, bool | Mapping | list | tuple) else _text(value)
    if len(text) <= 64:
        try:
            number = float(text)
        except ValueError:
            number = None
    # Times past the year 9999 cannot be shown as dates (the DLQ listing would fail on them)
    # and a due time that far off would hop through the delay tiers for ever.
    if number is None or not 0 <= number <= _MAX_NUMBER:
        raise BadBookkeeping(
            f"header {name!r} is not a number from 0 to {_MAX_NUMBER}: {value!r:.60}"
        )
    return number


def _attempt(headers: Mapping[str, Any]) -> int:
    number = _header_number(headers, H_ATTEMPT)
    if number is None:
        return 1
    if not 1 <= number <= _MAX_ATTEMPT or not number.is_integer():
        raise BadBookkeeping(f"header {H_ATTEMPT!r} is not an attempt count: {number!r}")
    return int(number)


def _returns(headers: Mapping[str, Any]) -> int:
    number = _header_number(headers, H_DELIVERY_COUNT)
    if number is None:
        return 0
    if number > _MAX_ATTEMPT or not number.is_integer():
        raise BadBookkeeping(f"header {H_DELIVERY_COUNT!r} is not a count: {number!r}")
    return int(number)


def incoming_to_delivery(
    group: str, message: DeliveredMessage, handle: object, *, counted: bool = False
) -> Delivery:
    """A `Delivery` for an AMQP message. Its attempt is our ``tidings-attempt`` header plus
    the times it came back unsettled (a crash, a consumer stopped mid-handler, an ordered
    retry given back to its partition): with `counted` (a quorum queue) the broker's durable
    ``x-delivery-count``; otherwise one more when it is flagged redelivered (a classic queue
    keeps only that flag, so two crashes in a row count once).

    Raises:
        BadBookkeeping: an attempt, count or time header cannot be read (see
            `safe_delivery`).
    """
    headers = message.header.properties.headers or {}
    attempt = _attempt(headers)
    for name in (H_DUE_AT, H_LAST_FAILED):
        _header_number(headers, name)
    if counted:
        attempt += _returns(headers)
    elif getattr(message.delivery, "redelivered", False):
        attempt += 1
    first_failed_at = _header_number(headers, H_FIRST_FAILED)
    return safe_delivery(
        group, message, handle, attempt=min(attempt, _MAX_ATTEMPT), first_failed_at=first_failed_at
    )


def safe_delivery(
    group: str,
    message: DeliveredMessage,
    handle: object,
    *,
    attempt: int = 1,
    first_failed_at: float | None = None,
) -> Delivery:
    """A `Delivery` for an AMQP message. Without `attempt` and `first_failed_at` (as
    `incoming_to_delivery` reads them) it reads none of our numeric bookkeeping (first
    attempt, never failed): what a message with `BadBookkeeping` is dead-lettered as."""
    properties = message.header.properties
    headers = properties.headers or {}
    deliver = message.delivery
    assert isinstance(deliver, spec.Basic.Deliver)
    key = headers.get(H_KEY)
    routing = headers.get(H_ROUTING_KEY)
    return Delivery(
        group=group,
        id=None if H_NO_ID in headers else (properties.message_id or None),
        type=_text(routing) if routing is not None else (deliver.routing_key or ""),
        body=message.body,
        content_type=properties.content_type,
        headers=user_headers(headers),
        key=_text(key) if key is not None else None,
        replayed=_text(headers.get(H_REPLAYED, "")) == "1",
        handle=handle,
        reply_to=properties.reply_to or None,
        attempt=attempt,
        first_failed_at=first_failed_at,
    )


def due_in(message: DeliveredMessage, now: float) -> float:
    """Seconds from `now` until the message is due (0 or less: now)."""
    headers = message.header.properties.headers
    try:
        due = _header_number(headers, H_DUE_AT) if headers else None
    except BadBookkeeping:
        return 0.0  # `incoming_to_delivery` refuses it
    return 0.0 if due is None else due - now


def copy_message(
    message: DeliveredMessage, headers: Mapping[str, Any]
) -> tuple[bytes, spec.Basic.Properties]:
    """Body and properties of a persistent copy of a received message, with `headers`
    merged over its own."""
    properties = message.header.properties
    merged = dict(properties.headers or {})
    # A copy is a new message: the broker's count of the old one's returns stays behind (a
    # quorum queue would not overwrite it on the copy's first delivery).
    merged.pop(H_DELIVERY_COUNT, None)
    merged.update(headers)
    routing = merged.get(H_ROUTING_KEY)
    if routing is None:
        merged[H_ROUTING_KEY] = message.routing_key or ""
    if not properties.message_id:
        merged[H_NO_ID] = "1"
    return message.body, spec.Basic.Properties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        headers=merged,
        delivery_mode=PERSISTENT,
        correlation_id=properties.correlation_id,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        message_type=properties.message_type,
        app_id=properties.app_id,
        reply_to=properties.reply_to,
    )
