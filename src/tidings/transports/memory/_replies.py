"""Reply inboxes on the memory broker: in-process, one per `open_replies` call."""

from __future__ import annotations

import asyncio
import logging
import uuid

from .._message import Delivery, OutgoingMessage
from .._transport import OnReply, Replies
from ._broker import MemoryBroker

__all__ = ["MemoryReplies", "send_reply"]

logger = logging.getLogger(__name__)


class MemoryReplies(Replies):
    """An inbox registered on the broker under a fresh address until it is closed."""

    def __init__(self, broker: MemoryBroker, on_reply: OnReply) -> None:
        self.broker = broker
        self.address = f"memory-reply:{uuid.uuid4().hex}"
        broker.inboxes[self.address] = on_reply

    async def close(self) -> None:
        self.broker.inboxes.pop(self.address, None)


def send_reply(broker: MemoryBroker, address: str, message: OutgoingMessage) -> None:
    """Hand `message` to the inbox at `address` in the next turn of the event loop (as a
    broker would, never inside the sender's call); drop it when the inbox is gone."""
    on_reply = broker.inboxes.get(address)
    if on_reply is None:
        logger.debug("dropped reply %s: inbox %s is closed", message.id, address)
        return
    delivery = Delivery(
        group=address,
        id=message.id,
        type=message.type,
        body=message.body,
        content_type=message.content_type,
        headers=dict(message.headers),
    )
    asyncio.get_running_loop().call_soon(on_reply, delivery)
