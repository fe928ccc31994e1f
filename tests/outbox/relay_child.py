"""A relay that dies (SIGKILL) right after the broker confirmed what it published, before it
could mark the rows sent: ``python -m tests.outbox.relay_child BROKER_URL DATABASE_URL [NAME]``
(``NAME``: the bus name, ``tidings`` by default)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tidings import Bus
from tidings.transports import OutgoingMessage, Transport, open_transport


def killed_after_the_confirm(url: str, options: Mapping[str, Any]) -> Transport:
    transport = open_transport(url, options)
    publish = transport.publish

    async def publish_then_die(messages: Sequence[OutgoingMessage]) -> list[bool]:
        routed = await publish(messages)
        os.kill(os.getpid(), signal.SIGKILL)
        return routed

    transport.publish = publish_then_die  # type: ignore[method-assign]
    return transport


async def main(broker: str, database: str, name: str = "tidings") -> None:
    bus = Bus(
        broker,
        name=name,
        database=database,
        transport=killed_after_the_confirm,
        outbox_lease=1.0,
    )
    async with bus:
        await asyncio.sleep(30)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
    sys.exit(3)  # the relay never published: the test fails on this status
