"""The load the benchmarks put on a bus: `Tick` events published in windows of concurrent
publishes, in ``publish_many`` batches, or one by one at a fixed rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tidings import Bus, Event

from ._measure import at_rate
from ._workers import sink_workers

T = TypeVar("T")

TYPE = "bench.tick"
WINDOW = 256  # publishes in flight, and the size of a publish_many batch
KIB = 1024
# With `n`, `sent_at` and the CloudEvents envelope, a 900-character payload makes about
# 1 KiB on the wire; other sizes are the payload alone.
DEFAULT_PAYLOAD = 900


class Tick(Event, type=TYPE):
    """One benchmark event; `sent_at` (``time.time()`` at publish) gives the latency."""

    n: int
    sent_at: float
    payload: str


def tick(n: int, payload: str) -> Tick:
    return Tick(n=n, sent_at=time.time(), payload=payload)


async def publish_window(bus: Bus, count: int, payload_size: int = DEFAULT_PAYLOAD) -> float:
    """Publish `count` ticks, `WINDOW` single publishes in flight; return the start time."""
    payload = "x" * payload_size
    start = time.time()
    for first in range(0, count, WINDOW):
        batch = range(first, min(first + WINDOW, count))
        await asyncio.gather(*(bus.publish(tick(n, payload)) for n in batch))
    return start


async def publish_batches(bus: Bus, count: int, payload_size: int = DEFAULT_PAYLOAD) -> float:
    """Publish `count` ticks in ``publish_many`` batches of `WINDOW`; return the start time."""
    payload = "x" * payload_size
    start = time.time()
    for first in range(0, count, WINDOW):
        await bus.publish_many(tick(n, payload) for n in range(first, min(first + WINDOW, count)))
    return start


async def publish_at_rate(
    bus: Bus, rate: float, count: int, payload_size: int = DEFAULT_PAYLOAD
) -> list[float]:
    """Publish `count` ticks at `rate` per second, each without waiting for the previous
    one's confirm; return each publish's confirm latency in seconds."""
    payload = "x" * payload_size
    return await at_rate(rate, count, lambda n: bus.publish(tick(n, payload)))


def with_bus(url: str, job: Callable[[Bus], Awaitable[T]], name: str, **options: Any) -> T:
    """Run ``job(bus)`` on a publish-only bus in a new event loop."""

    async def run() -> T:
        async with Bus(url, name=name, consume=False, **options) as bus:
            return await job(bus)

    return asyncio.run(run())


def _timeout(count: int, payload_size: int) -> float:
    return max(60.0, count / 200 * max(1, payload_size // 8192))


def end_to_end(
    url: str,
    count: int,
    *,
    batched: bool,
    processes: int = 1,
    payload_size: int = DEFAULT_PAYLOAD,
    name: str = "bench",
    management_url: str | None = None,
) -> float:
    """Events/s from the first publish (in this process) to the last event handled by
    ``tidings run`` with `processes` worker processes."""
    options = {"management_url": management_url} if management_url else {}
    publish = publish_batches if batched else publish_window
    with sink_workers(
        url, processes=processes, name=name, management_url=management_url
    ) as workers:
        start = with_bus(url, lambda bus: publish(bus, count, payload_size), name, **options)
        handled = workers.wait(count, _timeout(count, payload_size))
    return count / (handled.last - start)


def fixed_rate(url: str, rate: float, count: int) -> tuple[list[float], list[float]]:
    """(publish-to-handler, publish-to-confirm) latencies in seconds of `count` events
    published at `rate`/s to one ``tidings run`` worker process."""
    with sink_workers(url) as workers:
        confirms = with_bus(url, lambda bus: publish_at_rate(bus, rate, count), "bench")
        handled = workers.wait(count, _timeout(count, DEFAULT_PAYLOAD))
    return handled.latencies, confirms
