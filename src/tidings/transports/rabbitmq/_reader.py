"""Reading AMQP frames from the socket in bulk: the consuming side's share of `_frames`.

aiormq's ``FrameReceiver`` reads every frame with three ``readexactly`` calls under a lock
and decodes it with pamqp's generic decoders, a third of a consumer's CPU per message (each
message is three frames: ``basic.deliver``, its content header, its body). `BulkReceiver`
reads whatever the socket has (up to `CHUNK` bytes), cuts every complete frame out of it at
once and decodes the frames of a delivery and of a confirm with `struct`; any other frame,
and any frame the fast path cannot read, goes to pamqp's own ``unmarshal``, so errors are
pamqp's. The frames handed to aiormq are the objects pamqp makes (pinned by a test).

Only tidings' connections read this way: aiormq builds its receiver from the module global
``aiormq.connection.FrameReceiver`` when it connects, so that global becomes a chooser that
makes a `BulkReceiver` for a connection made inside `bulk_reading` (which the transport's
connection attempts run in, see `_failover`) and aiormq's own receiver for any other (tested
with aiormq 7.2.4 and pamqp 4.0.1; `supported` checks the name it relies on, and without it
every connection keeps aiormq's receiver).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import weakref
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import aiormq.connection
import aiormq.exceptions
from aiormq.exceptions import AMQPConnectionError
from pamqp import commands as spec
from pamqp import constants, decode
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

__all__ = [
    "BulkReceiver",
    "bulk_reading",
    "decode_frames",
    "remember_socket",
    "socket_of",
    "supported",
]

CHUNK = 1 << 18
"""Bytes read from the socket at most at a time."""

_HEAD = struct.Struct(">BHI")
_INDEX = struct.Struct(">I")
_CONTENT = struct.Struct(">HHQH")
_TAG = struct.Struct(">Q")
_DELIVER = 0x003C003C  # Basic.Deliver (class 60, method 60)
_ACK = 0x003C0050  # Basic.Ack (class 60, method 80)
_PROPS = spec.Basic.Properties
_LAYOUT = tuple((name, _PROPS.flags[name], _PROPS.amqp_type(name)) for name in _PROPS.__slots__)


def _short(data: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + data[at]
    if end > len(data):
        raise ValueError("short string past the end of the frame")
    return data[at + 1 : end].decode(), end


def _deliver(data: bytes) -> spec.Basic.Deliver:
    consumer_tag, at = _short(data, 4)
    (tag,) = _TAG.unpack_from(data, at)
    redelivered = bool(data[at + 8] & 1)
    exchange, at = _short(data, at + 9)
    routing_key, _ = _short(data, at)
    # Made without __init__, whose exchange-name check is for what a client sends.
    frame = spec.Basic.Deliver.__new__(spec.Basic.Deliver)
    frame.consumer_tag, frame.delivery_tag, frame.redelivered = consumer_tag, tag, redelivered
    frame.exchange, frame.routing_key = exchange, routing_key
    return frame


def _ack(data: bytes) -> spec.Basic.Ack:
    (tag,) = _TAG.unpack_from(data, 4)
    return spec.Basic.Ack(delivery_tag=tag, multiple=bool(data[12] & 1))


def _header(data: bytes) -> ContentHeader:
    _, weight, size, flags = _CONTENT.unpack_from(data, 0)
    if flags & 1:
        raise ValueError("continued property flags")  # never sent; pamqp reads them
    props = _PROPS()
    at = 14
    for name, flag, kind in _LAYOUT:
        if not flags & flag:
            continue
        value: Any
        if kind == "shortstr":
            value, at = _short(data, at)
        elif kind == "octet":
            value, at = data[at], at + 1
        else:  # a table or a timestamp: pamqp's decoder
            used, value = decode.by_type(data[at:], kind)
            at += used
        setattr(props, name, value)
    if at != len(data):
        raise ValueError("content header of the wrong length")
    header = ContentHeader(weight, size, props)
    header.class_id = spec.Basic.frame_id  # type: ignore[assignment]  # pamqp reads it so
    return header


def _fast(kind: int, payload: bytes) -> Any:
    """The frame of `payload`, or None for pamqp to read."""
    if kind == constants.FRAME_BODY:
        return ContentBody(payload)
    if kind == constants.FRAME_HEADER:
        return _header(payload)
    if kind == constants.FRAME_METHOD:
        (index,) = _INDEX.unpack_from(payload, 0)
        if index == _DELIVER:
            return _deliver(payload)
        if index == _ACK:
            return _ack(payload)
    return None


def decode_frames(data: bytes, started: bool = True) -> tuple[list[tuple[int, int, Any]], int]:
    """The complete frames at the start of `data` as aiormq receives them (bytes used,
    channel, frame), and how many bytes they took.

    Raises:
        ProtocolSyntaxError: the server answered with its protocol header (it refused
            ours), as aiormq raises.
        pamqp's UnmarshalingException: a frame pamqp cannot read either.
    """
    frames: list[tuple[int, int, Any]] = []
    at, size = 0, len(data)
    while size - at >= 8:
        if not started and data[at : at + 4] == b"AMQP":
            raise aiormq.exceptions.ProtocolSyntaxError("Unexpected AMQP protocol header")
        started = True
        kind, channel, length = _HEAD.unpack_from(data, at)
        end = at + 7 + length
        if end >= size:
            break
        frame: Any = None
        if data[end] == constants.FRAME_END:
            try:
                frame = _fast(kind, data[at + 7 : end])
            except (ValueError, IndexError, struct.error):
                frame = None  # pamqp's reading, and its error
        if frame is None:
            _, channel, frame = pamqp_frame.unmarshal(data[at : end + 1])
        frames.append((end + 1 - at, channel, frame))
        at = end + 1
    return frames, at


class BulkReceiver(aiormq.connection.FrameReceiver):
    """aiormq's ``FrameReceiver``, reading the socket in chunks (see the module docstring)."""

    def __init__(self, reader: Any) -> None:
        super().__init__(reader)
        self._buffer = b""
        self._ready: deque[tuple[int, int, Any]] = deque()

    async def get_frame(self) -> Any:
        while not self._ready:
            try:
                chunk = await self.reader.read(CHUNK)
            except (ConnectionError, OSError) as exc:
                raise AMQPConnectionError(f"Server communication error: {exc!r}") from exc
            if not chunk:
                if not self._buffer:
                    raise StopAsyncIteration  # at a frame's end, as aiormq's receiver
                raise AMQPConnectionError(
                    "Server connection unexpectedly closed. "
                    f"Read {len(self._buffer)} bytes of an incomplete frame"
                )
            data = self._buffer + chunk if self._buffer else chunk
            try:
                frames, used = decode_frames(data, self.started)
            except aiormq.exceptions.ProtocolSyntaxError:
                raise
            except Exception as exc:
                raise aiormq.exceptions.InvalidFrameError(str(exc)) from exc
            self._buffer = data[used:]
            self._ready.extend(frames)
            self.started = self.started or bool(frames)
        return self._ready.popleft()


_ORIGINAL: type[aiormq.connection.FrameReceiver] = aiormq.connection.FrameReceiver
_MADE: ContextVar[list[BulkReceiver] | None] = ContextVar("tidings_rabbitmq_bulk", default=None)
_SOCKETS: weakref.WeakKeyDictionary[Any, asyncio.Transport] = weakref.WeakKeyDictionary()


class _Chooser(_ORIGINAL):  # type: ignore[misc,valid-type]
    """Installed in aiormq's place of ``FrameReceiver``: a `BulkReceiver` for a connection
    made inside `bulk_reading` (tidings' own), aiormq's own receiver for any other."""

    def __new__(cls, reader: Any) -> Any:  # noqa: D102
        made = _MADE.get()
        if made is None:
            return _ORIGINAL(reader)
        receiver = BulkReceiver(reader)
        made.append(receiver)
        return receiver


def supported() -> bool:
    """Whether aiormq still builds its receiver from ``aiormq.connection.FrameReceiver``."""
    return isinstance(getattr(aiormq.connection, "FrameReceiver", None), type)


@contextlib.contextmanager
def bulk_reading() -> Iterator[list[BulkReceiver]]:
    """Connections aiormq makes inside the block (in this task) read with `BulkReceiver`;
    other connections of the process keep aiormq's receiver. Yields the receivers made."""
    if supported() and aiormq.connection.FrameReceiver is _ORIGINAL:
        aiormq.connection.FrameReceiver = _Chooser  # type: ignore[misc]
    made: list[BulkReceiver] = []
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)


def remember_socket(connection: Any, made: list[BulkReceiver]) -> None:
    """Note the socket of `connection` (an aiormq connection made in `bulk_reading`, whose
    receivers were `made`), for `socket_of`."""
    transport = getattr(made[-1].reader, "_transport", None) if made else None
    if isinstance(transport, asyncio.Transport):
        _SOCKETS[connection] = transport


def socket_of(connection: Any) -> asyncio.Transport | None:
    """The asyncio transport an aiormq connection made by tidings writes to, if known and
    open (publishing writes batches to it directly: see `_aiormq.write_now`)."""
    transport = _SOCKETS.get(connection)
    if transport is None or transport.is_closing():
        return None
    return transport
