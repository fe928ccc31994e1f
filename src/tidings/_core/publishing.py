"""Publishing: envelopes, encoding, the publish middleware stack, and the confirm.

Without middleware a publish builds its message and hands it to the transport at once. With
middleware each message goes down the publish stack, whose innermost step encodes it,
publishes it and waits for the broker's confirm. Several messages published together
(`publish_many`, the messages a handler's context held) still leave in one transport call:
their stacks run side by side and meet at one `_Batch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from .._clock import Clock
from .._codec.cloudevents import encode
from .._codec.envelope import Envelope, new_envelope, new_event_id
from .._exceptions import MessageTooLarge, Unroutable
from ..transports import OutgoingMessage, Transport
from .context import Context
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
        inner = self._publish_one  # one bound method, so `is` below compares like with like
        stack = publish_stack(middleware, inner)
        self._stack: PublishStack | None = None if stack is inner else stack

    # -- building --------------------------------------------------------------------------

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
        mtype, version = message_type_of(message)
        if key is not None and not isinstance(key, str):
            key = str(key)
        envelope = new_envelope(
            id=id or new_event_id(),
            source=self.source,
            type=mtype,
            time=datetime.fromtimestamp(self.clock.time(), UTC),
            dataversion=version,
            key=key,
            cause=cause,
        )
        data_json = message.__pydantic_serializer__.to_json(message)
        return Publication(envelope, message, key, to, headers, delay, data_json)

    def outgoing(self, pub: Publication) -> OutgoingMessage:
        """Encode `pub` for the transport; raise `MessageTooLarge` over the size limit."""
        data_json = pub.data_json
        if data_json is None:
            data_json = pub.message.__pydantic_serializer__.to_json(pub.message)
        body, content_type, ce_headers = encode(pub.envelope, data_json, self.wire)
        if len(body) > self.max_message_size:
            raise MessageTooLarge(
                f"{pub.envelope.type} message {pub.envelope.id} is {len(body):,} bytes, "
                f"over the limit of {self.max_message_size:,} (Bus(max_message_size=...))"
            )
        headers = {**pub.headers, **ce_headers} if pub.headers else ce_headers
        return OutgoingMessage(
            id=pub.envelope.id,
            type=pub.envelope.type,
            body=body,
            content_type=content_type,
            headers=headers,
            key=pub.key,
            delay=float(pub.delay or 0.0),
            group=pub.to,
            published_at=self.clock.time(),
        )

    # -- sending ---------------------------------------------------------------------------

    async def publish(self, pub: Publication) -> str:
        """Publish one message through the stack; return its id once confirmed."""
        if self._stack is None:
            return await self._publish_one(pub)
        return await self._stack(pub)

    async def publish_all(self, pubs: Sequence[Publication]) -> list[str]:
        """Publish several messages with one confirm; return their ids in order."""
        if not pubs:
            return []
        if self._stack is None:
            messages = [self.outgoing(p) for p in pubs]
            self.check_routed(messages, await self._transport().publish(messages))
            return [m.id for m in messages]
        batch = _Batch(self, len(pubs))
        return list(await asyncio.gather(*(batch.run(p) for p in pubs)))

    async def _publish_one(self, pub: Publication) -> str:
        out = [self.outgoing(pub)]
        self.check_routed(out, await self._transport().publish(out))
        return pub.envelope.id

    async def flush(self, ctx: Context) -> None:
        """Send what a handler published through its context (after it succeeded), with ids
        derived from the incoming event and correlation taken from it."""
        pubs = [
            self.publication(
                p.message,
                key=p.key,
                id=p.id,
                to=p.to,
                headers=p.headers,
                delay=p.delay,
                cause=ctx.envelope,
            )
            for p in ctx.pending
        ]
        await self.publish_all(pubs)

    def check_routed(self, messages: Sequence[OutgoingMessage], routed: Sequence[bool]) -> None:
        """Raise `Unroutable` for a message no group took, unless unroutable is ignored."""
        if self.on_unroutable != "error" or all(routed):
            return
        first = next(m for m, ok in zip(messages, routed, strict=True) if not ok)
        if first.group is not None:
            raise Unroutable(
                f"no group named {first.group!r} on bus {self.bus!r} to send "
                f"{first.type!r} to; start its workers (or await bus.declare()) first"
            )
        raise Unroutable(
            f"no group subscribes to {first.type!r} on bus {self.bus!r}; start the "
            "workers (or await bus.declare()) before publishing, or "
            "Bus(on_unroutable='ignore')"
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
        self._sender: asyncio.Task[None] | None = None

    async def run(self, pub: Publication) -> str:
        """Publish `pub` through the middleware, joining the batch at the innermost step."""
        joined = False

        async def join(p: Publication) -> str:
            nonlocal joined
            if joined or self.flushed:  # a second call_next, or a late one: on its own
                return await self.publisher._publish_one(p)
            joined = True
            try:
                message = self.publisher.outgoing(p)
            except BaseException as exc:
                self.failed = self.failed or exc  # the whole batch is refused, as without hooks
                self._arrived()
                raise
            result = asyncio.get_running_loop().create_future()
            self.messages.append(message)
            self.results.append(result)
            self._arrived()
            routed = await result
            self.publisher.check_routed([message], [routed])
            return p.envelope.id

        try:
            return await publish_stack(self.publisher.middleware, join)(pub)
        finally:
            if not joined:
                self._arrived()

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
        for result, ok in zip(self.results, routed, strict=True):
            if not result.done():
                result.set_result(ok)
