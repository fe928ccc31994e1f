"""Request/reply: `Bus.request` on the caller's side, and the answer a handler sends.

A request is a command sent to a group with ``reply_to`` set to the caller's reply inbox
(`Transport.open_replies`: RabbitMQ's direct reply-to, a reply queue in the embedded broker's
file, an in-process inbox on ``memory://``). It goes through the publish middleware like any
send, and through the group's whole pipeline (retries, dedupe, the inbox) like any delivery.
When the handler succeeds, the pipeline sends what it returned as the reply, before the
acknowledgement; when the request is dead-lettered, it sends a failure reply, which the caller
raises as `RemoteError`.

A reply is a CloudEvent: its causation id is the request's id (that is how the caller matches
it), its correlation id the request's correlation id (or the request's id), its id derived
from the request's id (a request handled twice answers with the same id). A handler returning
None replies with the type `tidings.reply.none`; a failure has the type `tidings.reply.error`
and the data ``{"exception_type", "message", "reason"}``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import to_json

from .._clock import Clock
from .._codec.cloudevents import decode, encode
from .._codec.envelope import DecodeError, Envelope, new_envelope, new_event_id
from .._exceptions import ConfigError, RemoteError, RequestTimeout, StateError
from ..transports import Delivery, Failure, OutgoingMessage, Replies, Transport
from .messages import Message, message_class, message_type_of
from .publishing import Publisher
from .upcasting import UpcastError, registry, version_of

__all__ = ["REPLY_ERROR", "REPLY_NONE", "Answers", "Requester"]

logger = logging.getLogger(__name__)

REPLY_NONE = "tidings.reply.none"
"""The type of the reply of a handler that returned None."""
REPLY_ERROR = "tidings.reply.error"
"""The type of the reply to a request that was dead-lettered."""

_REPLY_NS = uuid.UUID("0b4f6c1e-7d2a-5e8b-9c3f-4a6d8e2b1c70")


class Answers:
    """Builds and sends the replies of one bus's handlers (the pipeline calls it).

    Args:
        transport: returns the bus's open transport.
        source: the CloudEvents ``source`` of the replies (the bus's).
        wire: ``"structured"`` or ``"binary"``.
        clock: for the reply's ``time``.
        max_message_size: a reply larger than this is answered with a failure instead.
    """

    def __init__(
        self,
        transport: Callable[[], Transport],
        *,
        source: str,
        wire: Literal["structured", "binary"],
        clock: Clock,
        max_message_size: int,
    ) -> None:
        self._transport = transport
        self.source = source
        self.wire = wire
        self.clock = clock
        self.max_message_size = max_message_size

    def of_result(self, request: Envelope, result: object) -> OutgoingMessage:
        """The reply carrying what the handler returned (a message, or None)."""
        if result is None:
            return self._reply(request, REPLY_NONE, None, b"null")
        if not isinstance(result, Message):
            raise TypeError(
                f"a handler answering a request returns a tidings Event or Command (or None), "
                f"not {type(result).__name__}"
            )
        mtype, version = message_type_of(result)
        data = result.__pydantic_serializer__.to_json(result)
        reply = self._reply(request, mtype, version, data)
        if len(reply.body) > self.max_message_size:
            reason = (
                f"the reply {mtype!r} is {len(reply.body):,} bytes, over the limit of "
                f"{self.max_message_size:,} (Bus(max_message_size=...))"
            )
            return self.of_failure(request, Failure(reason, None, reason, "", 0.0))
        return reply

    def of_failure(self, request: Envelope, failure: Failure) -> OutgoingMessage:
        """The reply telling the caller its request was dead-lettered, and why."""
        data = {
            "exception_type": failure.exception_type,
            "message": failure.message or failure.reason,
            "reason": failure.reason,
        }
        return self._reply(request, REPLY_ERROR, None, to_json(data))

    def _reply(
        self, request: Envelope, mtype: str, version: int | None, data_json: bytes
    ) -> OutgoingMessage:
        envelope = new_envelope(
            id=str(uuid.uuid5(_REPLY_NS, request.id)),
            source=self.source,
            type=mtype,
            time=datetime.fromtimestamp(self.clock.time(), UTC),
            dataversion=version,
            key=None,
            cause=request,
        )
        body, content_type, headers = encode(envelope, data_json, self.wire)
        return OutgoingMessage(
            id=envelope.id,
            type=mtype,
            body=body,
            content_type=content_type,
            headers=headers,
            published_at=self.clock.time(),
        )

    async def send(self, address: str, reply: OutgoingMessage, request: Envelope) -> None:
        """Send `reply` to `address`; a failure to send is logged, not raised (the caller's
        request times out): the request itself was handled."""
        try:
            await self._transport().send_reply(address, reply)
        except Exception as exc:  # noqa: BLE001 - the handler's work is done either way
            logger.warning(
                "could not send the reply to request %s (%s): %s: %s",
                request.id,
                request.type,
                type(exc).__name__,
                exc,
            )


class Requester:
    """`Bus.request` for one bus: its reply inbox (opened at the first request, closed with
    the bus) and the requests waiting for their replies.

    Args:
        publisher: the bus's publisher (requests go through its publish middleware).
        transport: returns the bus's open transport.
        source: the bus's CloudEvents ``source`` (for decoding foreign replies).
    """

    def __init__(
        self, publisher: Publisher, transport: Callable[[], Transport], *, source: str
    ) -> None:
        self.publisher = publisher
        self._transport = transport
        self.source = source
        self._inbox: Replies | None = None
        self._opening = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[Message | None]] = {}

    async def request(
        self, command: Message, *, to: str, timeout: float, key: str | None
    ) -> Message | None:
        """Send `command` to group `to` and return the handler's reply (see `Bus.request`)."""
        message_type_of(command)  # a clear ConfigError for what is not a message
        if not isinstance(to, str) or not to:
            raise ConfigError("request(..., to=) needs the name of the group to send to")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(f"request timeout must be a number of seconds, not {timeout!r}")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"request timeout must be a positive number of seconds: {timeout}")
        inbox = await self._open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        request_id = new_event_id()
        waiting: asyncio.Future[Message | None] = loop.create_future()
        self._waiting[request_id] = waiting
        try:
            await self.publisher.publish(
                command, key=key, id=request_id, to=to, reply_to=inbox.address
            )
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    return await waiting
            except TimeoutError:
                raise RequestTimeout(
                    f"no reply to {command.__message_type__!r} request {request_id} from group "
                    f"{to!r} within {timeout:g}s: are its workers running? (the request stays "
                    "in the group until handled; its late reply is dropped)",
                    request_id=request_id,
                    to=to,
                    timeout=float(timeout),
                ) from None
        finally:
            self._waiting.pop(request_id, None)

    async def _open(self) -> Replies:
        if self._inbox is not None:
            return self._inbox
        async with self._opening:
            if self._inbox is None:
                self._inbox = await self._transport().open_replies(self._on_reply)
            return self._inbox

    def _on_reply(self, delivery: Delivery) -> None:
        try:
            envelope, data = decode(
                routing_key=delivery.type,
                body=delivery.body,
                content_type=delivery.content_type,
                headers=delivery.headers,
                message_id=delivery.id,
                source=self.source,
            )
        except DecodeError as exc:
            logger.warning("dropped an undecodable reply %s: %s", delivery.id, exc)
            return
        request_id = envelope.causationid or ""
        waiting = self._waiting.get(request_id)
        if waiting is None or waiting.done():
            logger.debug("dropped a late or repeated reply to request %s", request_id)
            return
        try:
            waiting.set_result(_reply_value(envelope, data, request_id))
        except Exception as exc:  # noqa: BLE001 - the caller gets it, raised from request()
            waiting.set_exception(exc)

    async def close(self) -> None:
        """Fail the requests still waiting and close the reply inbox."""
        for request_id, waiting in list(self._waiting.items()):
            if not waiting.done():
                waiting.set_exception(
                    StateError(f"the bus closed while request {request_id} waited for a reply")
                )
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            await inbox.close()


def _reply_value(envelope: Envelope, data: Any, request_id: str) -> Message | None:
    """The reply's value, or raise what the caller should get: `RemoteError` for a failure
    reply, `ConfigError` for a reply this process cannot decode."""
    if envelope.type == REPLY_NONE:
        return None
    if envelope.type == REPLY_ERROR:
        info = data if isinstance(data, dict) else {}
        exc_type, message = info.get("exception_type"), str(info.get("message") or "")
        named = f"{exc_type}: {message}" if exc_type else message
        raise RemoteError(
            f"request {request_id} failed in its handler: {named}",
            exception_type=exc_type if isinstance(exc_type, str) else None,
            remote_message=message,
            request_id=request_id,
        )
    cls = message_class(envelope.type, envelope.dataversion)
    if cls is None:
        raise ConfigError(
            f"the reply to request {request_id} is a {envelope.type!r}, which no message "
            "class in this process declares: import the module that defines it"
        )
    try:
        target = version_of(cls, envelope.type)
        if target is not None:
            data = registry.upcast(envelope.type, envelope.dataversion, target, data)
        return cls.model_validate(data)
    except (UpcastError, ValidationError) as exc:
        raise ConfigError(
            f"the reply to request {request_id} ({envelope.type!r}) does not fit "
            f"{cls.__name__}: {exc}"
        ) from exc
