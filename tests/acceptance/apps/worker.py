"""Run the consumers of one group of ``fanout_app`` until SIGTERM.

With KILLER=1 the worker SIGKILLs itself instead of acknowledging event n=7, once event
n=5 is blocked in its handler: event 7's handler has completed (and its dedupe marker is
committed) but its ack is lost, and event 5 is mid-handler.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fanout_app  # noqa: E402

KILL_AT_ACK_OF = 7


async def main(group: str) -> None:
    bus = fanout_app.bus
    await bus.start(groups=[group])
    if fanout_app.KILLER:
        transport = bus.transport
        real_ack = transport.ack

        async def ack(delivery):  # type: ignore[no-untyped-def]
            data = json.loads(delivery.body)["data"]
            if data["n"] == KILL_AT_ACK_OF:
                while not (fanout_app.OUT / "blocked").exists():  # noqa: ASYNC110 - a file
                    await asyncio.sleep(0.01)
                os.kill(os.getpid(), signal.SIGKILL)
            await real_ack(delivery)

        real_ack_soon = transport.ack_soon

        def ack_soon(delivery):  # type: ignore[no-untyped-def]
            # event 7 takes the awaited path above, where the worker dies
            if json.loads(delivery.body)["data"]["n"] == KILL_AT_ACK_OF:
                return False
            return real_ack_soon(delivery)

        transport.ack = ack  # type: ignore[method-assign]
        transport.ack_soon = ack_soon  # type: ignore[method-assign]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    (fanout_app.OUT / f"ready-{os.getpid()}").touch()
    await stop.wait()
    await bus.close(drain_timeout=5)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
