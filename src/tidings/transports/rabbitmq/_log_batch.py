"""The retained log's batch messages: the copies of many events packed into one stream
message, and `LogBatcher`, which collects the copies of a burst of publishes into them.

A copy per event was a second confirmed publish per event (a third of a publisher's throughput);
one per burst costs a few microseconds of packing per event. A batch message has the header
``tidings-log-batch`` = ``"1"`` (`H_BATCH`), content type `BATCH_TYPE`, and a body that is
a sequence of entries, each::

    4-byte big-endian length | UTF-8 JSON meta | 4-byte big-endian length | event body

The meta object holds what a replay needs: ``id`` (``""`` and ``"no_id": true`` for a
message published without one), ``type``, ``key`` (or null), ``content_type``, ``headers``
(the user headers, str to str), ``group`` (the group it was sent to, or null: routed by its
type) and ``published_at`` (epoch seconds). JSON, not pickle: a stream is readable by anyone
with access to the vhost, and what it holds must never run as code.

Streams written before batching hold one message per event, its bookkeeping in headers
(`H_TARGET`, `H_PUBLISHED`); `old_entry` reads one, so a replay reads both kinds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pamqp import commands as spec
from pydantic_core import to_json

from .._message import OutgoingMessage
from ._wire import H_KEY, H_NO_ID, H_ROUTING_KEY, PERSISTENT, user_headers

__all__ = [
    "BATCH_TYPE",
    "H_BATCH",
    "BadBatch",
    "LogBatcher",
    "LogEntry",
    "batch_properties",
    "chunks",
    "old_entry",
    "pack_entry",
    "unpack",
]

logger = logging.getLogger(__name__)

H_BATCH = "tidings-log-batch"
"""Set (to ``"1"``) on a stream message that packs several entries (see the docstring)."""
BATCH_TYPE = "application/vnd.tidings.log-batch"
MAX_BATCH_BYTES = 1 << 20
"""A batch message holds at most about this many bytes of entries (one more may pass it)."""
MAX_BATCH_ENTRIES = 1000
H_TARGET = "tidings-log-target"
"""The group an old-style entry was sent to (empty: routed by its type)."""
H_PUBLISHED = "tidings-log-published-at"
"""Epoch seconds (float) when an old-style entry was published."""

_LENGTH = struct.Struct(">I")


class BadBatch(ValueError):
    """A batch body cannot be read (truncated, or an entry's meta is not what we write)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event as the log holds it. `id` is ``""`` for a message published without one;
    `target` is the group it was sent to (None: routed by its type)."""

    id: str
    type: str
    key: str | None
    content_type: str
    headers: dict[str, str]
    target: str | None
    published_at: float
    body: bytes


def pack_entry(message: OutgoingMessage, now: float) -> bytes:
    """The bytes of one entry for `message` (published at `now` unless it says when)."""
    meta: dict[str, Any] = {
        "id": message.id,
        "type": message.type,
        "key": message.key,
        "content_type": message.content_type,
        "headers": dict(message.headers),
        "group": message.group,
        "published_at": message.published_at or now,
    }
    if not message.id:
        meta["no_id"] = True
    raw = to_json(meta)  # compact UTF-8 JSON, a fifth of the json module's cost
    body = message.body
    return b"".join((_LENGTH.pack(len(raw)), raw, _LENGTH.pack(len(body)), body))


def chunks(entries: Sequence[bytes]) -> list[list[bytes]]:
    """`entries` cut into batches of at most `MAX_BATCH_ENTRIES` and about `MAX_BATCH_BYTES`."""
    batches: list[list[bytes]] = [[]]
    size = 0
    for entry in entries:
        if size >= MAX_BATCH_BYTES or len(batches[-1]) >= MAX_BATCH_ENTRIES:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += len(entry)
    return batches


def batch_properties(app_id: str, now: float) -> spec.Basic.Properties:
    """The AMQP properties of a batch message (persistent, marked with `H_BATCH`)."""
    return spec.Basic.Properties(
        content_type=BATCH_TYPE,
        headers={H_BATCH: "1"},
        delivery_mode=PERSISTENT,
        timestamp=datetime.fromtimestamp(int(now), UTC),
        message_type="tidings.log.batch",
        app_id=app_id,
    )


def unpack(body: bytes) -> list[LogEntry]:
    """The entries of a batch body, in order.

    Raises:
        BadBatch: the body is truncated, or an entry's meta is not valid.
    """
    view = memoryview(body)
    entries: list[LogEntry] = []
    offset = 0
    while offset < len(view):
        raw, offset = _field(view, offset)
        data, offset = _field(view, offset)
        entries.append(_entry(len(entries), raw, data))
    return entries


def _field(view: memoryview, offset: int) -> tuple[bytes, int]:
    """The length-prefixed field at `offset`, and the offset after it."""
    start = offset + _LENGTH.size
    if start > len(view):
        raise BadBatch(f"truncated at byte {offset}: no room for a length")
    (length,) = _LENGTH.unpack_from(view, offset)
    end = start + length
    if end > len(view):
        raise BadBatch(f"truncated at byte {offset}: a field of {length} bytes does not fit")
    return bytes(view[start:end]), end


def _entry(index: int, raw: bytes, body: bytes) -> LogEntry:
    try:
        meta = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise BadBatch(f"entry {index}: its meta is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BadBatch(f"entry {index}: its meta is not an object")
    try:
        return LogEntry(
            id="" if meta.get("no_id") is True else _str(meta, "id"),
            type=_str(meta, "type"),
            key=_optional(meta, "key"),
            content_type=_str(meta, "content_type"),
            headers=_headers(meta.get("headers")),
            target=_optional(meta, "group"),
            published_at=_number(meta.get("published_at")),
            body=body,
        )
    except (KeyError, TypeError) as exc:
        raise BadBatch(f"entry {index}: {exc}") from None


def _str(meta: Mapping[str, Any], name: str) -> str:
    value = meta.get(name)
    if not isinstance(value, str):
        raise TypeError(f"{name!r} is not a string: {value!r:.60}")
    return value


def _optional(meta: Mapping[str, Any], name: str) -> str | None:
    return None if meta.get(name) is None else _str(meta, name)


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError(f"'headers' is not an object of strings: {value!r:.60}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"'published_at' is not a number: {value!r:.60}")
    return float(value)


def old_entry(message: AbstractIncomingMessage, headers: Mapping[str, Any]) -> LogEntry:
    """The entry of a stream message of the old kind (one event, bookkeeping in headers)."""
    key = headers.get(H_KEY)
    return LogEntry(
        id="" if H_NO_ID in headers else (message.message_id or ""),
        type=_text(headers.get(H_ROUTING_KEY, message.type or "")),
        key=_text(key) if key is not None else None,
        content_type=message.content_type or "application/json",
        headers=user_headers(headers),
        target=_text(headers.get(H_TARGET, "")) or None,
        published_at=_float(headers.get(H_PUBLISHED)),
        body=message.body,
    )


def _float(value: Any) -> float:
    try:
        return float(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        return 0.0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


Write = Callable[[Mapping[str, list[bytes]]], Awaitable[None]]
"""Sends packed entries per app id and deals with any failure itself (never raises)."""


class LogBatcher:
    """Collects the entries of concurrent records and writes them together.

    The first `add` of a burst starts a flush task; it runs once the tasks ready in the same
    event-loop turn have added theirs, so a burst of confirmed publishes becomes one write
    (see `_publisher.BatchPublisher`). Entries added while a write is under way go in the
    next one. Each `add` returns a future resolved once its entries were written (or given
    up: failures are the writer's to report).
    """

    def __init__(self, write: Write) -> None:
        self._write = write
        self._pending: dict[str, list[bytes]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._writing = 0
        self._flusher: asyncio.Task[None] | None = None

    def add(self, app_id: str, entries: list[bytes]) -> asyncio.Future[None]:
        """Queue `entries` (of messages published by `app_id`) for the next write."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        queued = self._pending.get(app_id)
        if queued is None:
            self._pending[app_id] = list(entries)
        else:
            queued.extend(entries)
        self._waiters.append(done)
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return done

    async def close(self) -> int:
        """Stop writing and release every waiting `add`; returns how many entries were
        queued or being written (perhaps lost)."""
        lost = self._writing + sum(len(e) for e in self._pending.values())
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            await asyncio.wait([flusher])  # never raises: its cancellation is expected
        waiters, self._pending, self._waiters = self._waiters, {}, []
        _release(waiters)
        return lost

    async def _flush(self) -> None:
        try:
            while self._waiters:
                pending, waiters = self._pending, self._waiters
                self._pending, self._waiters = {}, []
                self._writing = sum(len(e) for e in pending.values())
                try:
                    await self._write(pending)
                except Exception:  # the writer's own failures are its to report
                    logger.exception("writing %d entries to the retained log", self._writing)
                finally:
                    self._writing = 0
                    _release(waiters)
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
