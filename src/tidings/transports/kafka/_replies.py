"""Request/reply: each bus instance reads its own reply topic, ``<bus>__replies.<id>`` (one
partition), created when the inbox opens and deleted when it closes. A request carries the
topic's name in its ``tidings-reply-to`` header; the handler's answer is produced to that
topic, unless it is gone (its owner closed), and then dropped. An owner that died without
closing leaves its topic behind: Kafka has no queue that disappears with its consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from .._message import OutgoingMessage
from .._transport import OnReply, Replies
from ._admin import TopicSpec, Topology
from ._names import Names
from ._publisher import Producer
from ._wire import to_delivery, to_record

__all__ = ["KafkaReplies", "is_reply_topic", "send_reply"]

logger = logging.getLogger(__name__)


def is_reply_topic(names: Names, address: str) -> bool:
    """Only a reply topic of this bus may be written to from a request's header."""
    return address.startswith(names.replies("")) and "/" not in address


class KafkaReplies(Replies):
    """One bus instance's reply topic and the task that reads it."""

    def __init__(self, names: Names, topology: Topology, bootstrap: str, inbox: str) -> None:
        self.address = names.replies(inbox)
        self._names = names
        self._topology = topology
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self, on_reply: OnReply) -> None:
        await self._topology.ensure({self.address: TopicSpec(1)})
        await self._consumer.start()
        tp = TopicPartition(self.address, 0)
        self._consumer.assign([tp])
        await self._consumer.seek_to_beginning(tp)
        self._task = asyncio.create_task(self._run(on_reply), name="tidings-kafka-replies")

    async def _run(self, on_reply: OnReply) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("reading replies failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batch.items():
                for r in records:
                    on_reply(
                        to_delivery("", self._names, tp.topic, r.key, r.value, r.headers, None)
                    )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        await self._topology.delete([self.address])


async def send_reply(
    names: Names,
    topology: Topology,
    producer: Producer,
    address: str,
    message: OutgoingMessage,
    now: float,
) -> None:
    """Produce `message` to the reply topic `address`; drop it when the topic is gone (or
    is not a reply topic of this bus)."""
    if not is_reply_topic(names, address):
        logger.warning("dropped a reply to %r: not a reply topic of bus %r", address, names.bus)
        return
    if address not in await topology.topics() and address not in await topology.topics(
        refresh=True
    ):
        logger.debug("dropped a reply to %s: its inbox is gone", address)
        return
    await producer.send(address, to_record(message, now))
