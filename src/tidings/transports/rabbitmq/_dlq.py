"""The dead-letter queue ``<bus>.<group>.dlq``: writing entries and browsing them.

Browsing without consuming: `basic.get` then reject-requeue is not order-stable, so instead a
browse consumes the DLQ on a private channel (no prefetch limit) until it holds the entries it
needs (the queue's depth at the start, or ``offset + limit``), acknowledges only the entries an
operation removes (replayed after the broker confirmed the new message, or purged), and closes
the channel: RabbitMQ puts every other message back at its original position (classic queues),
so list order is stable. While a browse runs its messages are unacknowledged: another browse
in another process at that moment sees fewer entries (it waits `BROWSE_WAIT` for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

from ..._exceptions import DeadLetterNotFound
from .._failure import Failure, RawDeadLetter
from .._message import Delivery, OutgoingMessage
from ._errors import translate
from ._wire import (
    H_ATTEMPT,
    H_DUE_AT,
    H_FIRST_FAILED,
    H_KEY,
    H_LAST_FAILED,
    H_NO_ID,
    H_ROUTING_KEY,
    Names,
    raw_headers,
    user_headers,
)

__all__ = [
    "BROWSE_WAIT",
    "Browse",
    "DeadLetterQueues",
    "dead_letter_headers",
    "to_raw_dead_letter",
]

H_ENTRY = "tidings-dlq-id"
H_REASON = "tidings-dlq-reason"
H_EXC_TYPE = "tidings-dlq-exception-type"
H_EXC_MESSAGE = "tidings-dlq-message"
H_TRACEBACK = "tidings-dlq-traceback"
TRACEBACK_LIMIT = 8000
MESSAGE_LIMIT = 4000
BROWSE_WAIT = 2.0


def dead_letter_headers(delivery: Delivery, failure: Failure) -> dict[str, Any]:
    """Headers recording why `delivery` was dead-lettered (merged over its own)."""
    trace = failure.traceback
    if len(trace) > TRACEBACK_LIMIT:
        trace = "...\n" + trace[-TRACEBACK_LIMIT:]
    return {
        H_ENTRY: str(uuid.uuid4()),
        H_REASON: failure.reason,
        H_EXC_TYPE: failure.exception_type or "",
        H_EXC_MESSAGE: failure.message[:MESSAGE_LIMIT],
        H_TRACEBACK: trace,
        H_ATTEMPT: str(delivery.attempt),
        H_FIRST_FAILED: repr(delivery.first_failed_at or failure.at),
        H_LAST_FAILED: repr(failure.at),
        H_DUE_AT: "0",
    }


def _text(headers: Mapping[str, Any], name: str, default: str = "") -> str:
    value = headers.get(name)
    if value is None:
        return default
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def to_raw_dead_letter(group: str, message: AbstractIncomingMessage) -> RawDeadLetter | None:
    """The entry for a DLQ message (None for a message without our entry id)."""
    headers = raw_headers(message)
    entry_id = _text(headers, H_ENTRY)
    if not entry_id:
        return None
    key = headers.get(H_KEY)
    return RawDeadLetter(
        entry_id=entry_id,
        group=group,
        id=None if H_NO_ID in headers else (message.message_id or None),
        type=_text(headers, H_ROUTING_KEY, message.routing_key or ""),
        body=message.body,
        content_type=message.content_type,
        headers=user_headers(headers),
        key=_text(headers, H_KEY) if key is not None else None,
        reason=_text(headers, H_REASON),
        exception_type=_text(headers, H_EXC_TYPE) or None,
        message=_text(headers, H_EXC_MESSAGE),
        traceback=_text(headers, H_TRACEBACK),
        attempts=int(float(_text(headers, H_ATTEMPT, "1"))),
        first_failed_at=float(_text(headers, H_FIRST_FAILED, "0")),
        last_failed_at=float(_text(headers, H_LAST_FAILED, "0")),
    )


class Browse:
    """The first `want` messages of a DLQ (all when None), held unacknowledged."""

    def __init__(self, connection: AbstractConnection, queue: str, group: str) -> None:
        self._connection = connection
        self._queue_name = queue
        self._group = group
        self._channel: AbstractChannel | None = None
        self.entries: list[tuple[RawDeadLetter, AbstractIncomingMessage]] = []

    async def open(self, want: int | None) -> None:
        channel = await self._connection.channel()
        self._channel = channel
        queue = await channel.declare_queue(self._queue_name, passive=True)
        result = queue.declaration_result
        depth = int(result.message_count or 0)
        target = depth if want is None else min(depth, want)
        if target <= 0:
            return
        got: list[AbstractIncomingMessage] = []
        enough = asyncio.Event()

        async def take(message: AbstractIncomingMessage) -> None:
            got.append(message)
            if len(got) >= target:
                enough.set()

        await channel.set_qos(prefetch_count=0)
        tag = await queue.consume(take)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), BROWSE_WAIT)
        await queue.cancel(tag)
        for message in got:
            raw = to_raw_dead_letter(self._group, message)
            if raw is not None:
                self.entries.append((raw, message))

    async def close(self) -> None:
        """Put back every message not acknowledged, at its position, and wait (briefly)
        until the queue has them back: a quorum queue whose leader is on another node of
        a cluster takes them back after the channel's close returns, and a browse right
        after would count too few."""
        if self._channel is None:
            return
        with contextlib.suppress(Exception):
            await self._channel.close()
        self._channel = None
        with contextlib.suppress(Exception):
            channel = await self._connection.channel()
            try:
                deadline = time.monotonic() + BROWSE_WAIT
                while time.monotonic() < deadline:
                    queue = await channel.declare_queue(self._queue_name, passive=True)
                    if not queue.declaration_result.consumer_count:
                        return
                    await asyncio.sleep(0.02)  # polling the condition above
            finally:
                await channel.close()


class DeadLetterQueues:
    """The DLQs of one transport: list, get, replay and purge through a browse.

    One browse at a time per transport; replay acknowledges a DLQ message only after the
    broker confirmed the message that replaces it.

    Args:
        names: the bus's exchange and queue names.
        url: the broker URL, for error messages.
        connection: the transport's connection, to open browse channels on.
        publish: the transport's confirmed publish; replay sends through it.
    """

    def __init__(
        self,
        names: Names,
        url: str,
        *,
        connection: Callable[[], AbstractRobustConnection],
        publish: Callable[[Sequence[OutgoingMessage]], Awaitable[list[bool]]],
    ) -> None:
        self.names = names
        self.url = url
        self._connection = connection
        self._publish = publish
        self._dlq_lock = asyncio.Lock()

    async def _browse(self, group: str, want: int | None) -> Browse | None:
        browse = Browse(self._connection(), self.names.dlq(group), group)
        try:
            await browse.open(want)
        except aiormq.exceptions.ChannelNotFoundEntity:
            await browse.close()
            return None
        except Exception as exc:
            await browse.close()
            raise translate(exc, self.url, f"reading the dead letters of {group!r}") from exc
        return browse

    async def entries(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        async with self._dlq_lock:
            browse = await self._browse(group, offset + limit)
            if browse is None:
                return []
            try:
                return [raw for raw, _ in browse.entries[offset : offset + limit]]
            finally:
                await browse.close()

    async def get(self, group: str, entry_id: str) -> RawDeadLetter:
        async with self._dlq_lock:
            browse = await self._browse(group, None)
            if browse is not None:
                try:
                    for raw, _ in browse.entries:
                        if raw.entry_id == entry_id:
                            return raw
                finally:
                    await browse.close()
        raise DeadLetterNotFound(f"no dead letter {entry_id!r} in group {group!r}")

    async def replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        wanted = None if entry_ids is None else set(entry_ids)
        moved = 0
        async with self._dlq_lock:
            browse = await self._browse(group, None)
            if browse is None:
                return 0
            try:
                for raw, message in browse.entries:
                    if wanted is not None and raw.entry_id not in wanted:
                        continue
                    out = replace(rebuild(raw), group=group, delay=0.0)
                    (routed,) = await self._publish([out])
                    if not routed:
                        raise DeadLetterNotFound(f"group {group!r} has no queue to replay into")
                    await message.ack()  # only after the broker confirmed the new message
                    moved += 1
            finally:
                await browse.close()
        return moved

    async def purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        wanted = None if entry_ids is None else set(entry_ids)
        purged = 0
        async with self._dlq_lock:
            browse = await self._browse(group, None)
            if browse is None:
                return 0
            try:
                for raw, message in browse.entries:
                    if wanted is None or raw.entry_id in wanted:
                        await message.ack()
                        purged += 1
            finally:
                await browse.close()
        return purged
