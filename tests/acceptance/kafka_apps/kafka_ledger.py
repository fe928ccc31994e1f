"""A worker of the ``ledger`` group on Kafka, run by ``test_kafka_workers`` until SIGTERM.

Ordered and idempotent (Redis dedupe store). Each handled event appends ``time pid key n
event_id`` to ``OUT_DIR/worker-<pid>.log``. With ``KILL_AFTER=N`` the worker handles one
event at a time and SIGKILLs itself in the acknowledgement of its N-th event: the handler
finished and its dedupe marker is written, the offset is not committed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from tidings import Bus, Context, Event

OPTIONS = {
    "session_timeout": 2.0,
    "heartbeat_interval": 0.2,
    "metadata_max_age": 0.5,
    "drain_timeout": 5.0,
    "partitions": 6,
    "max_batch_size": 1,
}


class Entry(Event, type="ledger.entry"):
    key: str
    n: int


def make_bus(url: str, name: str, dedupe: str, *, consume: bool = True) -> Bus:
    return Bus(url, name=name, dedupe=dedupe, consume=consume, **OPTIONS)


async def main() -> None:
    out = Path(os.environ["OUT_DIR"])
    kill_after = int(os.environ.get("KILL_AFTER", "0"))
    bus = make_bus(os.environ["TIDINGS_URL"], os.environ["BUS_NAME"], os.environ["REDIS_URL"])
    log = (out / f"worker-{os.getpid()}.log").open("a", buffering=1)

    @bus.subscribe(
        "ledger.entry",
        group="ledger",
        ordered=True,
        idempotent=True,
        concurrency=1 if kill_after else 8,
    )
    async def book(event: Entry, ctx: Context) -> None:
        log.write(f"{time.time():.6f} {os.getpid()} {event.key} {event.n} {ctx.event_id}\n")

    await bus.start()
    if kill_after:
        transport = bus.transport
        real_ack = transport.ack
        acks = 0

        async def ack(delivery):  # type: ignore[no-untyped-def]
            nonlocal acks
            acks += 1
            if acks == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            await real_ack(delivery)

        transport.ack = ack  # type: ignore[method-assign]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    (out / f"ready-{os.getpid()}").touch()
    await stop.wait()
    await bus.close(drain_timeout=5)


if __name__ == "__main__":
    asyncio.run(main())
