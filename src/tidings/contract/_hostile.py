"""Contract: hostile input from other producers never stalls a group."""

from __future__ import annotations

import asyncio

from .._core.bus import Bus
from ..transports._message import OutgoingMessage
from ._events import OrderPlaced
from ._harness import Harness

__all__ = ["HostileInputContract"]

_CE = "application/cloudevents+json"


def _structured(event_id: str, **extra: str) -> bytes:
    attrs = "".join(f',"{name}":{value}' for name, value in extra.items())
    return (
        f'{{"specversion":"1.0","id":"{event_id}","source":"contract","type":"order.placed"'
        f'{attrs},"data":{{"order_id":"{event_id}"}}}}'
    ).encode()


HOSTILE: dict[str, tuple[OutgoingMessage, str]] = {
    # event id: (the message, a word its dead letter's reason must hold)
    "empty-structured": (OutgoingMessage("empty-structured", "order.placed", b"", _CE), "object"),
    "empty-json": (
        OutgoingMessage("empty-json", "order.placed", b"", "application/json"),
        "invalid data",
    ),
    "version-1e999": (
        OutgoingMessage(
            "version-1e999", "order.placed", _structured("version-1e999", dataversion="1e999")
        ),
        "dataversion",
    ),
    "version-nan": (
        OutgoingMessage(
            "version-nan", "order.placed", _structured("version-nan", dataversion="NaN")
        ),
        "dataversion",
    ),
    "binary-version-1e999": (
        OutgoingMessage(
            "binary-version-1e999",
            "order.placed",
            b'{"order_id": "x"}',
            "application/json",
            headers={
                "ce-specversion": "1.0",
                "ce-id": "binary-version-1e999",
                "ce-source": "contract",
                "ce-type": "order.placed",
                "ce-dataversion": "1e999",
            },
        ),
        "dataversion",
    ),
    "time-overflow": (
        OutgoingMessage(
            "time-overflow",
            "order.placed",
            _structured("time-overflow", time='"0001-01-01T00:00:00+23:59"'),
        ),
        "time",
    ),
}


async def _dead(bus: Bus, group: str) -> int:
    return len(await bus.dead_letters(group).list())


class HostileInputContract:
    """Empty bodies, versions and times that overflow: each is dead-lettered once with its
    reason, and the group keeps flowing."""

    async def test_each_hostile_message_is_dead_lettered_once_and_the_group_flows_on(
        self, harness: Harness
    ) -> None:
        # Given a group handling order.placed, one delivery at a time
        bus = harness.make_bus()
        good: list[str] = []

        @bus.subscribe("order.placed", group="inventory", concurrency=1)
        async def reserve(event: OrderPlaced) -> None:
            good.append(event.order_id)

        await bus.start()
        # When other producers' hostile messages arrive, then a good event
        await bus.transport.publish([message for message, _ in HOSTILE.values()])
        await bus.publish(OrderPlaced(order_id="o-good"))

        async def all_dead() -> bool:
            return await _dead(bus, "inventory") >= len(HOSTILE)

        await harness.wait_until(all_dead, what="every hostile message dead-lettered")
        await harness.wait_until(lambda: "o-good" in good, what="the good event")
        await harness.settled(bus)
        await asyncio.sleep(0)
        # Then each hostile one is in the DLQ once, after one attempt, with its reason
        entries = await bus.dead_letters("inventory").list()
        assert sorted(e.event_id or "" for e in entries) == sorted(HOSTILE)
        for entry in entries:
            _, word = HOSTILE[entry.event_id or ""]
            assert entry.attempts == 1, entry
            assert word in entry.reason and "\n" not in entry.reason, entry.reason
        assert good == ["o-good"]
