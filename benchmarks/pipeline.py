"""The pipeline's own cost: publishing and consuming on ``memory://`` (no broker I/O).

    python benchmarks/pipeline.py [--events 20000] [--rounds 5] [--middleware]

Prints events per second for ``publish_many`` (batches of 256), single ``publish`` and
consuming (a no-op handler, 256 deliveries in flight), medians over the rounds, with a
pass-through middleware (both hooks) when ``--middleware`` is given. To compare two
checkouts side by side, run it from each with ``PYTHONPATH=<checkout>/src``, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.append(str(ROOT / "src"))  # after PYTHONPATH, so another checkout can be measured

from tidings import Bus, Event  # noqa: E402

BATCH = 256
SINGLE = 2000


class Tick(Event, type="bench.tick"):
    n: int
    note: str


class PassThrough:
    """Both hooks, doing nothing but going on (a plain object with the two hooks, which
    0.1 checkouts take too, so the same script measures them)."""

    async def consume(self, ctx: Any, call_next: Any) -> Any:
        return await call_next()

    async def publish(self, message: Any, call_next: Any) -> str:
        return await call_next(message)


async def one_round(events: int, middleware: list[object]) -> tuple[float, float, float]:
    url = f"memory://{uuid.uuid4().hex}"
    total = events + SINGLE
    handled = 0
    done = asyncio.Event()

    def make(consume: bool) -> Bus:
        bus = Bus(url, middleware=middleware, consume=consume)

        @bus.subscribe("bench.tick", group="bench", concurrency=BATCH)
        async def handle(event: Tick) -> None:
            nonlocal handled
            handled += 1
            if handled == total:
                done.set()

        return bus

    async with make(consume=False) as publisher:
        start = time.perf_counter()
        for i in range(0, events, BATCH):
            batch = [Tick(n=j, note="x" * 100) for j in range(i, min(events, i + BATCH))]
            await publisher.publish_many(batch)
        many = events / (time.perf_counter() - start)
        start = time.perf_counter()
        for j in range(SINGLE):
            await publisher.publish(Tick(n=j, note="x" * 100))
        single = SINGLE / (time.perf_counter() - start)
        start = time.perf_counter()
        async with make(consume=True):
            await done.wait()
        consumed = total / (time.perf_counter() - start)
    return many, single, consumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--middleware", action="store_true", help="one pass-through middleware")
    args = parser.parse_args()
    middleware: list[object] = [PassThrough()] if args.middleware else []
    results = [asyncio.run(one_round(args.events, middleware)) for _ in range(args.rounds)]
    label = "one pass-through middleware" if args.middleware else "no middleware"
    print(f"pipeline on memory://, {label}, medians of {args.rounds} rounds (events/s)")
    columns = zip(*results, strict=True)
    for name, column in zip(("publish_many", "publish", "consume"), columns, strict=True):
        print(f"  {name:<13} {statistics.median(column):>10,.0f}")


if __name__ == "__main__":
    main()
