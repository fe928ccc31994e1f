"""Request/reply on RabbitMQ: direct reply-to.

A reply inbox is one channel (with publisher confirms) consuming the pseudo-queue
``amq.rabbitmq.reply-to`` without acknowledgements. Requests are published on that same
channel with ``reply_to`` set to the pseudo-queue's name, which the broker rewrites into an
address that leads back to this channel; a handler answers by publishing to the default
exchange with that address as the routing key. No queue is declared: the inbox goes away
with its channel, so an owner that died leaves nothing behind. Replies are not persistent
(nobody waits for them after a restart).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pamqp import commands as spec

from ..._exceptions import BrokerUnavailable
from .._message import Delivery, OutgoingMessage
from .._transport import OnReply, Replies
from .._urls import mask_url
from ._errors import translate
from ._publisher import ConfirmedPublisher, Outbound
from ._wire import user_headers

__all__ = ["DIRECT_REPLY_TO", "RabbitReplies", "reply_outbound"]

logger = logging.getLogger(__name__)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
"""The pseudo-queue of direct reply-to (a request's ``reply_to`` before the broker's
rewrite)."""


class RabbitReplies(Replies):
    """A direct reply-to inbox: its own channel, consuming replies and publishing requests.

    Open it with `RabbitReplies.open`; `send` publishes requests (with confirms, retried
    across a reconnect within `publish_timeout`, as every publish is).
    """

    address = DIRECT_REPLY_TO

    def __init__(self, channel: AbstractChannel, sender: ConfirmedPublisher) -> None:
        self._channel = channel
        self._sender = sender
        self._closed = False

    @classmethod
    async def open(
        cls,
        connection: AbstractRobustConnection,
        on_reply: OnReply,
        *,
        url: str,
        timeout: float,
        reconnect: Callable[[float], Awaitable[None]],
    ) -> RabbitReplies:
        """Open the channel and start consuming the pseudo-queue."""
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        except Exception as exc:
            raise translate(exc, url, "opening a reply inbox") from exc

        async def underlay() -> Any:
            if channel.is_closed:
                raise BrokerUnavailable(f"the reply channel to {mask_url(url)} is closed")
            return await channel.get_underlay_channel()

        sender = ConfirmedPublisher(underlay, url=url, timeout=timeout, reconnect=reconnect)
        inbox = cls(channel, sender)

        async def received(message: AbstractIncomingMessage) -> None:
            on_reply(_reply_delivery(message))

        try:
            await queue.consume(received, no_ack=True)
        except Exception as exc:
            await inbox.close()
            raise translate(exc, url, "opening a reply inbox") from exc
        return inbox

    async def send(self, items: Sequence[Outbound]) -> list[bool]:
        """Publish requests on this inbox's channel (so their replies come back to it)."""
        return await self._sender.send(items)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._sender.close()
        with contextlib.suppress(Exception):
            await self._channel.close()


def _reply_delivery(message: AbstractIncomingMessage) -> Delivery:
    return Delivery(
        group=DIRECT_REPLY_TO,
        id=message.message_id,
        type=message.type or "",
        body=message.body,
        content_type=message.content_type,
        headers=user_headers(dict(message.headers or {})),
    )


def reply_outbound(address: str, message: OutgoingMessage, app_id: str) -> Outbound:
    """The publish of a reply: to the default exchange, routed by the request's address."""
    properties = spec.Basic.Properties(
        content_type=message.content_type,
        headers=dict(message.headers),
        message_id=message.id,
        message_type=message.type,
        app_id=app_id,
    )
    return "", address, message.body, properties
