"""Measuring: spreads of repeated rounds, latency percentiles, pacing, alternating order."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

PERCENTILES = ("p50", "p95", "p99", "max")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..1) of `values`; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_ms(latencies: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies given in seconds, in milliseconds."""
    ordered = sorted(latencies)
    return {
        "p50": percentile(ordered, 0.50) * 1000,
        "p95": percentile(ordered, 0.95) * 1000,
        "p99": percentile(ordered, 0.99) * 1000,
        "max": (ordered[-1] if ordered else float("nan")) * 1000,
    }


@dataclass(frozen=True)
class Spread:
    """Median, minimum and maximum of the values of repeated rounds."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            nan = float("nan")
            return cls(nan, nan, nan, 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, digits: int = 0) -> str:
        """``median (min-max)``, or just the median when there was one round."""
        if self.rounds <= 1:
            return f"{self.median:,.{digits}f}"
        return f"{self.median:,.{digits}f} ({self.low:,.{digits}f}-{self.high:,.{digits}f})"


def rotation(items: Sequence[T], round_no: int) -> list[T]:
    """`items` rotated by `round_no`, so contenders alternate who runs first."""
    if not items:
        return []
    shift = round_no % len(items)
    return [*items[shift:], *items[:shift]]


async def paced(count: int, rate: float) -> AsyncIterator[int]:
    """Yield 0..count-1, the n-th at ``start + n / rate`` (never sleeping to catch up)."""
    start = time.perf_counter()
    for n in range(count):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n


async def at_rate(
    rate: float, count: int, publish_one: Callable[[int], Awaitable[object]]
) -> list[float]:
    """Call ``publish_one(n)`` for n in 0..count-1 at `rate` per second, each without
    waiting for the previous one to return; return how long each took to return (the
    confirm latency), in seconds."""
    confirms: list[float] = []

    async def one(n: int) -> None:
        start = time.time()
        await publish_one(n)
        confirms.append(time.time() - start)

    tasks: set[asyncio.Task[None]] = set()
    async for n in paced(count, rate):
        task = asyncio.create_task(one(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return confirms
