"""Publishing: envelopes, encoding, the publish middleware stack, and the confirm.

Without middleware a publish builds its message and hands it to the transport at once. With
middleware each message goes down the publish stack, whose innermost step encodes it,
publishes it and waits for the broker's confirm. Several messages published together
(`publish_many`, the messages a handler's context held) still leave in one transport call:
their stacks run side by side and meet at one `Batch`.

A publish given a ``session`` runs the same way, but its innermost step stages the encoded
messages as outbox rows in that session's transaction instead of publishing them (the relay
sends them once it commits).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from .._codec.cloudevents import encode
from .._codec.envelope import Envelope, new_envelope, new_event_id
from .._exceptions import MessageTooLarge, Unroutable
from ..transports import CAP_ATOMIC_BATCH, OutgoingMessage, Transport, TransportOptions
from .batch import Batch, ids_or_raise, leave_batch, place_of, reset
from .context import Context, Pending
from .messages import Message, message_type_of
from .middleware import Publication, PublishStack, publish_stack

__all__ = ["Publisher", "Stage"]

Stage = Callable[[object, Sequence[OutgoingMessage]], Awaitable[None]]
"""Stages encoded messages as outbox rows in a session's transaction."""

# The session the publish under way stages into (None: publish to the transport). Tasks a
# batch starts copy it, so every stack of a `publish_many(..., session=)` stages.
_SESSION: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "tidings_publish_session", default=None
)


class Publisher:
    """Builds, encodes and publishes a bus's messages.

    Args:
        options: the bus's common settings: its name (for error messages), the largest
            encoded message accepted (``max_message_size``), ``on_unroutable`` (``"error"``
            raises `Unroutable` when nothing receives a message), and the clock (the
            envelope's ``time``).
        source: CloudEvents ``source`` of what it publishes.
        wire: ``"structured"`` or ``"binary"``.
        middleware: the bus's middleware (those with a publish hook take part).
        transport: returns the open transport (raises `StateError` when the bus is not open).
        stage: stages messages in a session's transaction (the bus's outbox).
    """

    def __init__(
        self,
        options: TransportOptions,
        *,
        source: str,
        wire: Literal["structured", "binary"],
        middleware: Sequence[object],
        transport: Callable[[], Transport],
        stage: Stage,
    ) -> None:
        self.bus = options.name
        self.source = source
        self.wire = wire
        self.max_message_size = options.max_message_size
        self.on_unroutable = options.on_unroutable
        self.clock = options.clock
        self._transport = transport
        self._stage = stage
        self.middleware = list(middleware)
        inner = self._innermost  # one bound method, so `is` below compares like with like
        stack = publish_stack(middleware, inner)
        self._stack: PublishStack | None = None if stack is inner else stack

    # -- building --------------------------------------------------------------------------

    def envelope(
        self, message: Message, *, key: str | None, id: str | None, cause: Envelope | None
    ) -> Envelope:
        """A new envelope for `message`, published now."""
        mtype, version = message_type_of(message)
        return new_envelope(
            id=id or new_event_id(),
            source=self.source,
            type=mtype,
            time=datetime.fromtimestamp(self.clock.time(), UTC),
            dataversion=version,
            key=key,
            cause=cause,
        )

    def publication(
        self,
        message: Message,
        *,
        key: str | None = None,
        id: str | None = None,
        to: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        cause: Envelope | None = None,
        reply_to: str | None = None,
    ) -> Publication:
        """`message` with its new envelope, ready for the publish stack."""
        if key is not None and not isinstance(key, str):
            key = str(key)
        envelope = self.envelope(message, key=key, id=id, cause=cause)
        data_json = message.__pydantic_serializer__.to_json(message)
        return Publication(envelope, message, key, to, headers, delay, data_json, reply_to)

    def outgoing(self, pub: Publication) -> OutgoingMessage:
        """Encode `pub` for the transport; raise `MessageTooLarge` over the size limit."""
        data_json = pub.data_json
        if data_json is None:
            data_json = pub.message.__pydantic_serializer__.to_json(pub.message)
        out = self._encode(pub.envelope, data_json, pub.key, pub.to, pub.headers, pub.delay)
        if pub.reply_to is not None:
            out.reply_to = pub.reply_to
        return out

    def _encode(
        self,
        envelope: Envelope,
        data_json: bytes,
        key: str | None,
        to: str | None,
        headers: Mapping[str, str] | None,
        delay: float | None,
    ) -> OutgoingMessage:
        body, content_type, ce_headers = encode(envelope, data_json, self.wire)
        if len(body) > self.max_message_size:
            raise MessageTooLarge(
                f"{envelope.type} message {envelope.id} is {len(body):,} bytes, "
                f"over the limit of {self.max_message_size:,} (Bus(max_message_size=...))"
            )
        return OutgoingMessage(
            id=envelope.id,
            type=envelope.type,
            body=body,
            content_type=content_type,
            headers={**headers, **ce_headers} if headers else ce_headers,
            key=key,
            delay=float(delay or 0.0),
            group=to,
            published_at=self.clock.time(),
        )

    # -- sending ---------------------------------------------------------------------------

    async def publish(
        self,
        message: Message,
        *,
        key: str | None = None,
        id: str | None = None,
        to: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        session: object | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Publish one message through the stack; return its id once confirmed (or, with a
        `session`, once staged in its transaction). `reply_to` makes it a request whose
        answer goes to that reply inbox."""
        if self._stack is None and session is None and _SESSION.get() is None:
            # The common case, without setting the context variable (a few µs a publish).
            out = [self._outgoing_of(message, key, id, to, headers, delay, None)]
            out[0].reply_to = reply_to
            self.check_routed(out, await self._transport().publish(out))
            return out[0].id
        token = _SESSION.set(session)
        try:
            if self._stack is not None:
                pub = self.publication(
                    message, key=key, id=id, to=to, headers=headers, delay=delay, reply_to=reply_to
                )
                # A publish from inside a batched message's middleware is not in its batch.
                place = leave_batch()
                try:
                    return await self._stack(pub)
                finally:
                    reset(place)
            # Without middleware, no `Publication` is made: straight to the transport.
            out = [self._outgoing_of(message, key, id, to, headers, delay, None)]
            out[0].reply_to = reply_to
            self.check_routed(out, await self.deliver(out))
            return out[0].id
        finally:
            _SESSION.reset(token)

    async def publish_all(
        self,
        items: Sequence[Pending | Message],
        cause: Envelope | None = None,
        session: object | None = None,
    ) -> list[str]:
        """Publish several messages with one confirm (or stage them in `session`'s
        transaction); return their ids in order.

        `items` are messages (published with fresh ids) or the `Pending` messages a handler's
        context held; `cause` is the event they were published in response to.
        """
        if not items:
            return []
        token = _SESSION.set(session)
        try:
            if self._stack is None:
                messages = [self._prepared(item, cause) for item in items]
                self.check_routed(messages, await self.deliver(messages))
                return [m.id for m in messages]
            pubs = [self._publication_of(item, cause) for item in items]
            batch = Batch(self, len(pubs))
            results = await asyncio.gather(
                *(batch.run(self._stack, p) for p in pubs), return_exceptions=True
            )
            return ids_or_raise(results)
        finally:
            _SESSION.reset(token)

    def build(
        self,
        message: Message,
        *,
        key: str | None,
        id: str | None,
        to: str | None,
        delay: float | None,
    ) -> OutgoingMessage:
        """`message` encoded, without publish middleware (`Bus.stage`)."""
        return self._outgoing_of(message, key, id, to, None, delay, None)

    def _prepared(self, item: Pending | Message, cause: Envelope | None) -> OutgoingMessage:
        if isinstance(item, Pending):
            return self._outgoing_of(
                item.message, item.key, item.id, item.to, item.headers, item.delay, cause
            )
        return self._outgoing_of(item, None, None, None, None, None, cause)

    def _outgoing_of(
        self,
        message: Message,
        key: str | None,
        id: str | None,
        to: str | None,
        headers: Mapping[str, str] | None,
        delay: float | None,
        cause: Envelope | None,
    ) -> OutgoingMessage:
        """`message` encoded for the transport, without a `Publication` (no middleware)."""
        if key is not None and not isinstance(key, str):
            key = str(key)
        envelope = self.envelope(message, key=key, id=id, cause=cause)
        data_json = message.__pydantic_serializer__.to_json(message)
        return self._encode(envelope, data_json, key, to, headers, delay)

    def _publication_of(self, item: Pending | Message, cause: Envelope | None) -> Publication:
        if isinstance(item, Pending):
            return self.publication(
                item.message,
                key=item.key,
                id=item.id,
                to=item.to,
                headers=item.headers,
                delay=item.delay,
                cause=cause,
            )
        return self.publication(item, cause=cause)

    async def _innermost(self, pub: Publication) -> str:
        """The innermost step of the publish stack: join the batch this stack runs in, if
        any (see `Batch`), else publish alone."""
        batch = place_of()
        if batch is not None:
            return await batch.join(pub)
        out = [self.outgoing(pub)]
        self.check_routed(out, await self.deliver(out))
        return pub.envelope.id

    async def deliver(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        """Publish `messages` in one transport call, or stage them in the session of the
        publish under way (every one counts as routed: the relay finds out later)."""
        session = _SESSION.get()
        if session is None:
            return await self._transport().publish(messages)
        await self._stage(session, messages)
        return [True] * len(messages)

    async def flush(self, ctx: Context) -> None:
        """Send what a handler published through its context (after it succeeded), with ids
        derived from the incoming event and correlation taken from it; a transactional
        handler's go into the outbox, in its transaction."""
        await self.publish_all(ctx.pending, cause=ctx.envelope, session=ctx._session)

    def check_routed(self, messages: Sequence[OutgoingMessage], routed: Sequence[bool]) -> None:
        """Raise `Unroutable` for a message no group took, unless unroutable is ignored; it
        names the ids that went out and those that did not."""
        if self.on_unroutable != "error" or all(routed):
            return
        pairs = list(zip(messages, routed, strict=True))
        sent = [] if self.atomic else [m.id for m, ok in pairs if ok]
        raise self.unroutable([m for m, ok in pairs if not ok], sent=sent)

    def refused(self, routed: Sequence[bool]) -> bool:
        """True when a call with these routing flags stored none of its messages."""
        return self.on_unroutable == "error" and not all(routed) and self.atomic

    @property
    def atomic(self) -> bool:
        """True when the transport stores nothing of a call holding an unroutable message."""
        return CAP_ATOMIC_BATCH in self._transport().capabilities

    def unroutable(self, lost: Sequence[OutgoingMessage], *, sent: Sequence[str]) -> Unroutable:
        """The `Unroutable` for `lost` messages (the first one named), `sent` having gone."""
        first = lost[0]
        ids = {"sent_ids": sent, "unroutable_ids": [m.id for m in lost]}
        more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
        if first.group is not None:
            return Unroutable(
                f"no group named {first.group!r} on bus {self.bus!r} to send "
                f"{first.type!r} to{more}; start its workers (or await bus.declare()) first",
                **ids,
            )
        return Unroutable(
            f"no group subscribes to {first.type!r} on bus {self.bus!r}{more}; start the "
            "workers (or await bus.declare()) before publishing, or "
            "Bus(on_unroutable='ignore')",
            **ids,
        )
