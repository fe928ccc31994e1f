"""A two-group service used by the multi-process acceptance test.

Every handler appends ``<pid> <tag> <event id>`` lines to a per-process log file in
``$OUT_DIR``; the test reads them to see what ran where.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tidings import Bus, Context, Event

OUT = Path(os.environ["OUT_DIR"])
BLOCK_N = 5  # event the killer worker never finishes (killed mid-handler)
KILLER = os.environ.get("KILLER") == "1"


class Ping(Event, type="test.ping"):
    n: int


bus = Bus(os.environ["TIDINGS_URL"], lease=float(os.environ.get("LEASE", "1.0")))
_fd: int | None = None


def record(tag: str, event_id: str) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(OUT / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(_fd, f"{os.getpid()} {tag} {event_id}\n".encode())


@bus.subscribe("test.ping", group="A", idempotent=True, concurrency=8)
async def handle_a(event: Ping, ctx: Context) -> None:
    record("A-start", ctx.event_id)
    if KILLER and event.n == BLOCK_N and ctx.attempt == 1:
        (OUT / "blocked").write_text(ctx.event_id)
        await asyncio.sleep(3600)  # stays in flight until the process is killed
    record("A-done", ctx.event_id)


@bus.subscribe("test.ping", group="B", idempotent=True, concurrency=8)
async def handle_b(event: Ping, ctx: Context) -> None:
    record("B-done", ctx.event_id)
