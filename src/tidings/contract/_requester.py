"""A requester in a process of its own, for the request/reply contract.

``python -m tidings.contract._requester URL OPTIONS_JSON GROUP COUNT TIMEOUT`` opens a
publish-only bus on `URL` with the bus options in `OPTIONS_JSON`, sends `COUNT`
`PriceQuote` requests to `GROUP` at once (sku ``s-<n>``, quantity `n`), and prints one JSON
object: ``{"replies": [[sku, cents] or null, ...], "errors": ["Type: message", ...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .._core.bus import Bus
from ._events import PriceGiven, PriceQuote


async def _one(bus: Bus, group: str, n: int, timeout: float) -> Any:
    reply = await bus.request(PriceQuote(sku=f"s-{n}", quantity=n), to=group, timeout=timeout)
    assert isinstance(reply, PriceGiven), reply
    return [reply.sku, reply.cents]


async def _main(url: str, options: dict[str, Any], group: str, count: int, timeout: float) -> None:
    async with Bus(url, consume=False, **options) as bus:
        results = await asyncio.gather(
            *(_one(bus, group, n, timeout) for n in range(count)), return_exceptions=True
        )
    replies = [None if isinstance(r, BaseException) else r for r in results]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    print(json.dumps({"replies": replies, "errors": errors}))


if __name__ == "__main__":
    url, options, group, count, timeout = sys.argv[1:6]
    asyncio.run(_main(url, json.loads(options), group, int(count), float(timeout)))
