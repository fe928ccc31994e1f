"""Regression: on the memory transport, an ordered key whose head waits for its retry.

The consumer used to wait for an unrelated change instead of the retry's due time, and
`TestBus.drain()` counted the events held behind the head as ready, so it never returned.
"""

from __future__ import annotations

from tidings import Bus, Context, Event, Retry
from tidings.testing import TestBus


class Booked(Event, type="ledger.booked"):
    key: str
    n: int


async def test_drain_runs_the_retry_of_an_ordered_head_then_the_rest_of_its_key() -> None:
    bus = Bus("memory://unused")
    log: list[tuple[str, int, int]] = []

    @bus.subscribe("ledger.booked", group="ledger", ordered=True, retry=Retry(attempts=3, base=5))
    async def book(event: Booked, ctx: Context) -> None:
        log.append((event.key, event.n, ctx.attempt))
        if event.n == 0 and ctx.attempt == 1:
            raise ConnectionError("first try fails")

    async with TestBus(bus) as tb:
        for n in range(3):
            await bus.publish(Booked(key="a", n=n), key="a")
        await tb.drain(retries=True, timeout=5)
    assert log == [("a", 0, 1), ("a", 0, 2), ("a", 1, 1), ("a", 2, 1)]
