"""Fixtures of the example tests: every scenario runs on every transport we have.

A later transport joins by adding its URL to `TRANSPORTS` (RabbitMQ: ``amqp://``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tidings import Bus, Context

TRANSPORTS = ["memory", "sqlite"]


@pytest.fixture(params=TRANSPORTS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh broker of each transport."""
    if request.param == "memory":
        return f"memory://examples-{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'examples.db'}"


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = 20.0, what: str = ""
) -> None:
    """Wait until `condition` holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.02)


async def idle(bus: Bus, groups: Iterable[str]) -> bool:
    """True when none of `groups` has anything ready, in flight or scheduled."""
    stats = {s.group: s for s in await bus.stats()}
    return all(
        g in stats and not (stats[g].ready or stats[g].in_flight or stats[g].scheduled)
        for g in groups
    )


class Handled:
    """A consume middleware counting, per group, the deliveries handled and the attempts
    that failed."""

    def __init__(self) -> None:
        self.handled: dict[str, list[str]] = {}
        self.failed: dict[str, list[str]] = {}

    async def consume(self, ctx: Context, call_next: Callable[[], Awaitable[None]]) -> None:
        try:
            await call_next()
        except Exception:
            self.failed.setdefault(ctx.group, []).append(ctx.event_id)
            raise
        self.handled.setdefault(ctx.group, []).append(ctx.event_id)

    def count(self, group: str) -> int:
        return len(self.handled.get(group, ()))


def keys_seen(store: dict[str, set[str]], field: str) -> Callable[[dict[str, Any], Context], Any]:
    """A handler recording ``data[field]`` under the event type in `store`."""

    async def record(data: dict[str, Any], ctx: Context) -> None:
        store.setdefault(ctx.envelope.type, set()).add(str(data[field]))

    return record
