"""Messages crossing the transport boundary: published, and delivered until settled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Delivery", "OutgoingMessage"]


@dataclass(slots=True)
class OutgoingMessage:
    """One encoded message to publish.

    Attributes:
        id: the event id (AMQP `message_id`).
        type: the routing key (the event type).
        body: encoded bytes.
        content_type: MIME type of `body`.
        headers: transport headers (binary-mode `ce-*` attributes, our retry bookkeeping).
        key: ordering/partition key.
        delay: seconds before the message becomes available to consumers.
        group: deliver to this group only, bypassing routing (commands, DLQ replay).
        published_at: epoch seconds when it was published.
        replayed: mark the delivery as a replay (skips dedupe).
        reply_to: the address of the `Replies` inbox the answer goes to (a request made
            with `bus.request`); None for everything else.
    """

    id: str
    type: str
    body: bytes
    content_type: str = "application/cloudevents+json"
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    delay: float = 0.0
    group: str | None = None
    published_at: float = 0.0
    replayed: bool = False
    reply_to: str | None = None


@dataclass(slots=True)
class Delivery:
    """A message handed to a consumer of one group, until it is settled.

    Attributes:
        group: the group it was delivered to.
        id: the message id the transport knows (None for a foreign message without one).
        type: the routing key it was published with.
        body: the encoded bytes.
        content_type: MIME type, when the broker carried one.
        headers: transport headers as published.
        key: ordering key, if any.
        attempt: 1 on first delivery; survives restarts and lease expiry.
        replayed: delivered by `replay` or a DLQ replay marked as such.
        first_failed_at: epoch seconds of the first failed attempt, if any.
        handle: the transport's own reference (row id, delivery tag).
        reply_to: where the handler's answer goes (`Transport.send_reply`), for a request;
            None for everything else.
    """

    group: str
    id: str | None
    type: str
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    attempt: int = 1
    replayed: bool = False
    first_failed_at: float | None = None
    handle: object = None
    reply_to: str | None = None
