"""Fixtures for the embedded broker's own tests: fresh files, opened transports, messages,
replies, and a look at the rows of the file.

Waits and the recording inbox come from `tests.support`."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tidings.transports import (
    COMMON_OPTIONS,
    Delivery,
    Failure,
    OutgoingMessage,
    TransportOptions,
)
from tidings.transports.sqlite import SqliteOptions, SqliteTransport

OpenTransport = Callable[..., Awaitable[SqliteTransport]]


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


def reply(n: int, key: str | None = None) -> OutgoingMessage:
    """The n-th reply of a test."""
    return OutgoingMessage(
        id=f"reply-{n}",
        type="order.priced",
        body=f'{{"n": {n}}}'.encode(),
        content_type="application/json",
        headers={"ce-causationid": f"request-{n}"},
        key=key,
    )


def rows(db: Path, table: str) -> int:
    """Rows of a table of the broker file, read as an operator would."""
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


class Replies:
    """An `OnReply` callback recording what it is given."""

    def __init__(self) -> None:
        self.got: list[Delivery] = []

    def __call__(self, delivery: Delivery) -> None:
        self.got.append(delivery)

    @property
    def ids(self) -> list[str | None]:
        return [d.id for d in self.got]


async def idle(transport: SqliteTransport) -> bool:
    """True when none of the transport's groups holds a delivery (ready, in flight or
    scheduled)."""
    return all(s.ready + s.in_flight + s.scheduled == 0 for s in await transport.stats())


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.fixture
async def open_transport(db_url: str) -> AsyncIterator[OpenTransport]:
    """Open transports on the test's file (or another URL); all are closed after the test.

    Keyword arguments are common settings (`TransportOptions`: ``name``, ``clock``,
    ``on_unroutable``, ...) or the embedded broker's own (`SqliteOptions`)."""
    opened: list[SqliteTransport] = []

    async def factory(
        url: str | None = None, *, lease: float = 30.0, **settings: Any
    ) -> SqliteTransport:
        common = {k: settings.pop(k) for k in COMMON_OPTIONS & settings.keys()}
        common.setdefault("retention", 7 * 24 * 3600.0)
        options = TransportOptions(lease=lease, **common)
        transport = SqliteTransport(url or db_url, options, SqliteOptions(**settings))
        await transport.open()
        opened.append(transport)
        return transport

    yield factory
    for transport in reversed(opened):
        await transport.close()


@pytest.fixture
async def transport(open_transport: OpenTransport) -> SqliteTransport:
    return await open_transport()
