"""The bus name is the namespace on the embedded broker: two buses with different names on
one file share nothing (groups, bindings, dead letters, dedupe markers, replay, stats)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import eventually
from tidings import Bus, Event, Retry, Unroutable
from tidings.transports import Delivery, GroupSpec

from .conftest import OpenTransport, failure, message


class OrderPlaced(Event, type="order.placed"):
    order_id: str


def _bus(db: Path, name: str, got: list[str], *, fail: bool = False) -> Bus:
    bus = Bus(f"sqlite:///{db}", name=name)

    @bus.subscribe("order.placed", group="billing", retry=Retry(attempts=1))
    async def bill(event: OrderPlaced) -> None:
        got.append(event.order_id)
        if fail:
            raise ValueError(f"{name} cannot bill")

    return bus


async def test_two_buses_with_different_names_on_one_file_are_isolated(tmp_path: Path) -> None:
    # Given buses "shop" and "lab" on one file, each with a group named "billing"
    db = tmp_path / "bus.db"
    shop_got: list[str] = []
    lab_got: list[str] = []
    async with _bus(db, "shop", shop_got) as shop, _bus(db, "lab", lab_got, fail=True) as lab:
        # When each publishes an order
        await shop.publish(OrderPlaced(order_id="s-1"))
        await lab.publish(OrderPlaced(order_id="l-1"))

        # Then each group got its own bus's event only
        await eventually(lambda: shop_got and lab_got, what="both handlers")
        await eventually(lambda: _dead(lab), what="the lab's dead letter")
        assert (shop_got, lab_got) == (["s-1"], ["l-1"])

        # And stats and dead letters are per bus
        [shop_stats], [lab_stats] = await shop.stats(), await lab.stats()
        assert (shop_stats.group, shop_stats.dead) == ("billing", 0)
        assert (lab_stats.group, lab_stats.dead) == ("billing", 1)
        assert await shop.dead_letters("billing").list() == []

        # And a replay of the retained log replays the bus's own events
        assert await shop.replay("billing", "1h") == 1
        await eventually(lambda: len(shop_got) == 2, what="the replay")
        assert shop_got == ["s-1", "s-1"]


async def _dead(bus: Bus) -> bool:
    [stats] = await bus.stats()
    return stats.dead == 1


async def test_a_type_only_another_bus_subscribes_to_is_unroutable(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    async with _bus(db, "shop", []), Bus(f"sqlite:///{db}", name="lab") as lab:
        with pytest.raises(Unroutable, match="'lab'"):
            await lab.publish(OrderPlaced(order_id="l-1"))
        assert await lab.stats() == []


async def test_dedupe_markers_and_claims_are_per_namespace(open_transport: OpenTransport) -> None:
    shop, lab = await open_transport(name="shop"), await open_transport(name="lab")
    shop_store, lab_store = shop.dedupe_store(), lab.dedupe_store()

    # Given an event id claimed in one namespace and done in the other
    assert await shop_store.claim("billing", "e1", 30.0) == "claimed"
    await lab_store.mark("billing", "e2", 60.0)

    # Then each namespace sees only its own
    assert await lab_store.claim("billing", "e1", 30.0) == "claimed"
    assert not await shop_store.seen("billing", "e2")
    assert await shop_store.claim("billing", "e2", 30.0) == "claimed"
    assert await lab_store.claim("billing", "e2", 30.0) == "done"


async def test_the_same_group_name_in_two_namespaces_is_two_queues(
    open_transport: OpenTransport,
) -> None:
    shop, lab = await open_transport(name="shop"), await open_transport(name="lab")
    spec = GroupSpec("billing", ("order.*",), max_ready=1)
    await shop.declare([spec])
    await lab.declare([GroupSpec("billing", ("order.*",))])

    # When the shop's group fills up, the lab's group (same name, no bound) is not affected
    assert await shop.publish([message("order.placed")]) == [True]
    assert await lab.publish([message("order.placed") for _ in range(3)]) == [True] * 3
    got: list[Delivery] = []

    async def take(d: Delivery) -> None:
        got.append(d)
        await lab.dead_letter(d, failure(at=time.time()))

    await lab.consume(GroupSpec("billing", ("order.*",)), take)
    await eventually(lambda: len(got) == 3, what="the lab's three")
    assert [(s.group, s.ready, s.dead) for s in await shop.stats()] == [("billing", 1, 0)]
    await eventually(
        lambda: _lab_dead(lab), what="the lab's dead letters, and none in the shop's group"
    )
    assert await shop.dlq_list("billing", 10, 0) == []


async def _lab_dead(lab) -> bool:  # type: ignore[no-untyped-def]
    [stats] = await lab.stats()
    return stats.dead == 3
