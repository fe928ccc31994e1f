"""Publish ``count`` Ping events numbered from ``start``, 32 in flight at a time, and log
the id of every event whose publish returned (was confirmed durable)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fanout_app  # noqa: E402

from tidings import Bus


async def main(start: int, count: int) -> None:
    bus = Bus(os.environ["TIDINGS_URL"], consume=False)
    log = fanout_app.OUT / f"published-{start}.log"
    async with bus:
        with log.open("a") as out:
            for first in range(start, start + count, 32):
                batch = range(first, min(first + 32, start + count))
                ids = await asyncio.gather(*(bus.publish(fanout_app.Ping(n=n)) for n in batch))
                out.write("".join(f"{n} {i}\n" for n, i in zip(batch, ids, strict=True)))
                out.flush()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
