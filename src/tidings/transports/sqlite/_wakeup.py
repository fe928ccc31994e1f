"""Cross-process wake-up for the embedded broker: a datagram after each commit.

Every process with consumers binds one UDP socket on ``127.0.0.1`` (a random port) and
registers the port with its consumers in the ``consumers`` table. After a commit that made
deliveries of some groups available (or changed when they will be), the committing process
sends one small datagram, the comma-separated ids of those groups, to each port registered for
them. The receiving consumers claim at once; a slow poll stays as the safety net for a lost
datagram, so an idle worker costs ~0% CPU and still wakes within a millisecond or so.

Reply inboxes register the same port (in ``inboxes``); a commit that stored a reply sends
`REPLIES` to its inbox's port, and the owner takes its replies at once.

A datagram carries no data and no authority: at worst a stray one makes a consumer run one
empty claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable

__all__ = ["REPLIES", "WakeListener", "WakeSender", "decode_groups", "encode_groups"]

_LOCALHOST = "127.0.0.1"

REPLIES = b"replies"
"""Payload telling a process that one of its reply inboxes got a reply. A listener of an
older release (a process of version 2 on a migrated file) cannot read it as a group list
and wakes all its consumers: one empty claim each."""


def encode_groups(gids: Iterable[int]) -> bytes:
    """Payload naming the groups to wake."""
    return ",".join(str(g) for g in sorted(gids)).encode("ascii")


def decode_groups(data: bytes) -> frozenset[int] | None:
    """Groups named by a payload, or None (wake everyone) when it cannot be read."""
    try:
        return frozenset(int(part) for part in data.split(b",") if part)
    except ValueError:
        return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(
        self, on_wake: Callable[[frozenset[int] | None], None], on_replies: Callable[[], None]
    ) -> None:
        self._on_wake = on_wake
        self._on_replies = on_replies

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if data == REPLIES:
            self._on_replies()
        else:
            self._on_wake(decode_groups(data))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors of a UDP socket: nothing to do, the safety poll covers any loss.
        pass


class WakeListener:
    """The UDP socket a process's consumers and reply inboxes wait on.

    Args:
        on_wake: called on the event loop with the groups named by each datagram received.
        on_replies: called on the event loop for each `REPLIES` datagram received.
    """

    def __init__(
        self, on_wake: Callable[[frozenset[int] | None], None], on_replies: Callable[[], None]
    ) -> None:
        self._on_wake = on_wake
        self._on_replies = on_replies
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind to a random port on 127.0.0.1 and return it."""
        if self._transport is None:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self._on_wake, self._on_replies), local_addr=(_LOCALHOST, 0)
            )
            self._transport = transport
            self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def close(self) -> None:
        """Stop listening; safe to call twice."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class WakeSender:
    """Sends wake-up datagrams; used from the writer thread. Errors are ignored: a
    registration may name a process that died, and the safety poll covers any loss."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    def send(self, ports: Iterable[int], payload: bytes) -> None:
        """Send `payload` to each port on 127.0.0.1."""
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        for port in ports:
            with contextlib.suppress(OSError):
                self._sock.sendto(payload, (_LOCALHOST, port))

    def close(self) -> None:
        """Release the socket; safe to call twice."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
