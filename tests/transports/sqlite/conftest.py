"""Fixtures for the embedded broker's own tests: fresh files, opened transports, waits."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tidings.transports import Delivery, Failure, OutgoingMessage, TransportOptions
from tidings.transports.sqlite import SqliteTransport

OpenTransport = Callable[..., Awaitable[SqliteTransport]]


async def eventually(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll `predicate` (sync or async) every 5 ms until it is true; fail after `timeout`
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


def message(type: str = "order.placed", body: bytes = b"{}", **fields: Any) -> OutgoingMessage:
    """An outgoing message with a fresh id."""
    fields.setdefault("id", uuid.uuid4().hex)
    return OutgoingMessage(type=type, body=body, **fields)


def failure(reason: str = "ValueError: boom", at: float | None = None) -> Failure:
    return Failure(
        reason=reason,
        exception_type="builtins.ValueError",
        message="boom",
        traceback="Traceback (most recent call last): ...",
        at=time.time() if at is None else at,
    )


class Inbox:
    """A deliver callback that records each delivery, then settles it with `settle`
    (ack by default)."""

    def __init__(
        self,
        transport: SqliteTransport,
        settle: Callable[[Delivery], Awaitable[None]] | None = None,
    ) -> None:
        self.transport = transport
        self.settle = settle or transport.ack
        self.deliveries: list[Delivery] = []
        self.times: list[float] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.times.append(time.monotonic())
        await self.settle(delivery)

    @property
    def ids(self) -> list[str | None]:
        return [d.id for d in self.deliveries]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.fixture
async def open_transport(db_url: str) -> AsyncIterator[OpenTransport]:
    """Open transports on the test's file (or another URL); all are closed after the test."""
    opened: list[SqliteTransport] = []

    async def factory(
        url: str | None = None, *, lease: float = 30.0, **extra: Any
    ) -> SqliteTransport:
        retention = extra.pop("retention", 7 * 24 * 3600.0)
        options = TransportOptions(lease=lease, retention=retention, extra=extra)
        transport = SqliteTransport(url or db_url, options)
        await transport.open()
        opened.append(transport)
        return transport

    yield factory
    for transport in reversed(opened):
        await transport.close()


@pytest.fixture
async def transport(open_transport: OpenTransport) -> SqliteTransport:
    return await open_transport()
