"""The service the benchmarks run as workers: ``tidings run benchmarks.sink:bus --url URL``.

One group, ``sink``, subscribed to ``bench.tick``, whose handler does nothing but note when
each event arrived. Every worker process sends what it saw (count, first and last arrival,
publish-to-handler latencies) to the harness (`_workers.Tally`), so the harness can tell
when all of them were handled.

Set by the harness in the environment: ``BENCH_REPORT`` (``host:port`` to report to),
``BENCH_BUS_NAME`` (the bus namespace, default ``bench``), ``BENCH_CONCURRENCY`` (handlers
in flight, default 256) and, for RabbitMQ, ``BENCH_MANAGEMENT_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from tidings import Bus

from ._load import TYPE, Tick
from ._workers import Tally


def _options() -> dict[str, Any]:
    management = os.environ.get("BENCH_MANAGEMENT_URL")
    return {"management_url": management} if management else {}


tally = Tally()
bus = Bus(name=os.environ.get("BENCH_BUS_NAME", "bench"), **_options())


@bus.subscribe(TYPE, group="sink", concurrency=int(os.environ.get("BENCH_CONCURRENCY", "256")))
async def sink(event: Tick) -> None:
    tally.record(event.sent_at)
