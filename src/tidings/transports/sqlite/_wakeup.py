"""Cross-process wake-up for the embedded broker: a datagram after each commit.

Every process with consumers binds one UDP socket on ``127.0.0.1`` (a random port) and
registers the port with its consumers in the ``consumers`` table. After a commit that made
deliveries of some groups available (or changed when they will be), the committing process
sends one small datagram, the comma-separated ids of those groups, to each port registered for
them. The receiving consumers claim at once; a slow poll stays as the safety net for a lost
datagram, so an idle worker costs ~0% CPU and still wakes within a millisecond or so.

A datagram carries no data and no authority: at worst a stray one makes a consumer run one
empty claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable

__all__ = ["WakeListener", "WakeSender", "decode_groups", "encode_groups"]

_LOCALHOST = "127.0.0.1"


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
    def __init__(self, on_wake: Callable[[frozenset[int] | None], None]) -> None:
        self._on_wake = on_wake

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._on_wake(decode_groups(data))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors of a UDP socket: nothing to do, the safety poll covers any loss.
        pass


class WakeListener:
    """The UDP socket a process's consumers wait on.

    Args:
        on_wake: called on the event loop with the groups named by each datagram received.
    """

    def __init__(self, on_wake: Callable[[frozenset[int] | None], None]) -> None:
        self._on_wake = on_wake
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind to a random port on 127.0.0.1 and return it."""
        if self._transport is None:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self._on_wake), local_addr=(_LOCALHOST, 0)
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
