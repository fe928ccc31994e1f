"""Publishing: envelopes, encoding, the publish middleware stack, and the confirm.

Without middleware a publish builds its message and hands it to the transport at once. With
middleware each message goes down the publish stack, whose innermost step encodes it,
publishes it and waits for the broker's confirm. Several messages published together
(`publish_many`, the messages a handler's context held) still leave in one transport call:
their stacks run side by side and meet at one `_Batch`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from .._clock import Clock
from .._codec.cloudevents import encode
from .._codec.envelope import Envelope, new_envelope, new_event_id
from .._exceptions import MessageTooLarge, Unroutable
from ..transports import CAP_ATOMIC_BATCH, OutgoingMessage, Transport
from .context import Context, Pending
from .messages import Message, message_type_of
from .middleware import Publication, PublishStack, publish_stack

__all__ = ["Publisher"]


class Publisher:
    """Builds, encodes and publishes a bus's messages.

    Args:
        bus: the bus name (for error messages).
        source: CloudEvents ``source`` of what it publishes.
        wire: ``"structured"`` or ``"binary"``.
        max_message_size: the largest encoded message accepted, in bytes.
        on_unroutable: ``"error"`` raises `Unroutable` when nothing receives a message.
        middleware: the bus's middleware (those with a publish hook take part).
        clock: time source for the envelope's ``time``.
        transport: returns the open transport (raises `StateError` when the bus is not open).
    """

    def __init__(
        self,
        *,
        bus: str,
        source: str,
        wire: Literal["structured", "binary"],
        max_message_size: int,
        on_unroutable: Literal["error", "ignore"],
        middleware: Sequence[object],
        clock: Clock,
        transport: Callable[[], Transport],
    ) -> None:
        self.bus = bus
        self.source = source
        self.wire = wire
        self.max_message_size = max_message_size
        self.on_unroutable = on_unroutable
        self.clock = clock
        self._transport = transport
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
    ) -> Publication:
        """`message` with its new envelope, ready for the publish stack."""
        if key is not None and not isinstance(key, str):
            key = str(key)
        envelope = self.envelope(message, key=key, id=id, cause=cause)
        data_json = message.__pydantic_serializer__.to_json(message)
        return Publication(envelope, message, key, to, headers, delay, data_json)

    def outgoing(self, pub: Publication) -> OutgoingMessage:
        """Encode `pub` for the transport; raise `MessageTooLarge` over the size limit."""
        data_json = pub.data_json
        if data_json is None:
            data_json = pub.message.__pydantic_serializer__.to_json(pub.message)
        return self._encode(pub.envelope, data_json, pub.key, pub.to, pub.headers, pub.delay)

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
    ) -> str:
        """Publish one message through the stack; return its id once confirmed."""
        if self._stack is not None:
            pub = self.publication(message, key=key, id=id, to=to, headers=headers, delay=delay)
            # A publish from inside a batched message's middleware is not part of its batch.
            token = _PLACE.set(None)
            try:
                return await self._stack(pub)
            finally:
                _PLACE.reset(token)
        # Without middleware, no `Publication` is made: straight to the transport.
        out = [self._outgoing_of(message, key, id, to, headers, delay, None)]
        self.check_routed(out, await self._transport().publish(out))
        return out[0].id

    async def publish_all(
        self, items: Sequence[Pending | Message], cause: Envelope | None = None
    ) -> list[str]:
        """Publish several messages with one confirm; return their ids in order.

        `items` are messages (published with fresh ids) or the `Pending` messages a handler's
        context held; `cause` is the event they were published in response to.
        """
        if not items:
            return []
        if self._stack is None:
            messages = [self._prepared(item, cause) for item in items]
            self.check_routed(messages, await self._transport().publish(messages))
            return [m.id for m in messages]
        pubs = [self._publication_of(item, cause) for item in items]
        batch = _Batch(self, len(pubs))
        results = await asyncio.gather(
            *(batch.run(self._stack, p) for p in pubs), return_exceptions=True
        )
        return _ids_or_raise(results)

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
        any (see `_Batch`), else publish alone."""
        place = _PLACE.get()
        if place is not None and place.take():
            return await place.batch.join(pub)
        return await self._publish_one(pub)

    async def _publish_one(self, pub: Publication) -> str:
        out = [self.outgoing(pub)]
        self.check_routed(out, await self._transport().publish(out))
        return pub.envelope.id

    async def flush(self, ctx: Context) -> None:
        """Send what a handler published through its context (after it succeeded), with ids
        derived from the incoming event and correlation taken from it."""
        await self.publish_all(ctx.pending, cause=ctx.envelope)

    def check_routed(self, messages: Sequence[OutgoingMessage], routed: Sequence[bool]) -> None:
        """Raise `Unroutable` for a message no group took, unless unroutable is ignored; it
        names the ids that went out and those that did not."""
        if self.on_unroutable != "error" or all(routed):
            return
        pairs = list(zip(messages, routed, strict=True))
        sent = [] if self.atomic else [m.id for m, ok in pairs if ok]
        raise self.unroutable([m for m, ok in pairs if not ok], sent=sent)

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


def _ids_or_raise(results: Sequence[str | BaseException]) -> list[str]:
    """The ids of a batch published through hooks; an error of one message raised, with the
    unroutable ones of the whole batch gathered in one `Unroutable`."""
    errors = [r for r in results if isinstance(r, BaseException)]
    if not errors:
        return [r for r in results if isinstance(r, str)]
    lost = [e for e in errors if isinstance(e, Unroutable)]
    other = next((e for e in errors if not isinstance(e, Unroutable)), None)
    if other is not None:
        raise other
    named = [e for e in lost if e.unroutable_ids] or lost
    raise Unroutable(
        str(named[0]),
        sent_ids=[r for r in results if isinstance(r, str)],
        unroutable_ids=[i for e in lost for i in e.unroutable_ids],
    )


class _Place:
    """One message's place in a batch, taken by the first ``call_next`` to reach the
    innermost step (a second call from one middleware publishes on its own)."""

    __slots__ = ("batch", "taken")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch
        self.taken = False

    def take(self) -> bool:
        if self.taken or self.batch.flushed:
            return False
        self.taken = True
        return True


# The place of the message whose stack runs in this task (each `_Batch.run` runs in a task of
# its own, with its own copy of the context).
_PLACE: contextvars.ContextVar[_Place | None] = contextvars.ContextVar(
    "tidings_publish_place", default=None
)


class _Batch:
    """The meeting point of several publish stacks running side by side.

    Each stack's innermost step adds its message and waits. Once every stack has either
    arrived or finished without publishing (a middleware may drop a message), the messages
    go to the transport in one call (one confirm) and each step gets its own result.
    """

    def __init__(self, publisher: Publisher, expected: int) -> None:
        self.publisher = publisher
        self.pending = expected
        self.messages: list[OutgoingMessage] = []
        self.results: list[asyncio.Future[bool]] = []
        self.flushed = False
        self.failed: BaseException | None = None  # a message that could not be encoded
        self.refused = False  # an atomic transport stored none of it (one was unroutable)
        self._sender: asyncio.Task[None] | None = None

    async def run(self, stack: PublishStack, pub: Publication) -> str:
        """Publish `pub` through `stack`, whose innermost step joins this batch."""
        place = _Place(self)
        _PLACE.set(place)
        try:
            return await stack(pub)
        finally:
            if not place.taken:
                self._arrived()

    async def join(self, pub: Publication) -> str:
        try:
            message = self.publisher.outgoing(pub)
        except BaseException as exc:
            self.failed = self.failed or exc  # the whole batch is refused, as without hooks
            self._arrived()
            raise
        result = asyncio.get_running_loop().create_future()
        self.messages.append(message)
        self.results.append(result)
        self._arrived()
        routed = await result
        if routed and self.refused:
            # Stored with none of the batch: one message of it was unroutable.
            raise Unroutable("the batch was refused whole", sent_ids=(), unroutable_ids=())
        self.publisher.check_routed([message], [routed])
        return pub.envelope.id

    def _arrived(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.flushed:
            self.flushed = True
            if self.messages:
                self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        if self.failed is not None:
            for result in self.results:
                result.set_exception(self.failed)
            return
        try:
            routed = await self.publisher._transport().publish(self.messages)
        except BaseException as exc:
            for result in self.results:
                if not result.done():
                    result.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        publisher = self.publisher
        self.refused = publisher.on_unroutable == "error" and not all(routed) and publisher.atomic
        for result, ok in zip(self.results, routed, strict=True):
            if not result.done():
                result.set_result(ok)
