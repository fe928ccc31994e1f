"""Dedupe claims on the memory broker: atomic among every transport of one name, expiring
on the transport's clock."""

from __future__ import annotations

import asyncio

from tidings.testing import ManualClock
from tidings.transports import DedupeStore

from .conftest import MakeTransport


async def _stores(memory: MakeTransport, count: int) -> list[DedupeStore]:
    stores = []
    for _ in range(count):
        store = (await memory()).dedupe_store()
        assert store is not None
        stores.append(store)
    return stores


async def test_of_two_claims_at_once_exactly_one_wins(memory: MakeTransport) -> None:
    # Given two transports of one name (two buses in one process)
    first, second = await _stores(memory, 2)
    for n in range(24):
        # When both claim one event id at the same moment
        results = await asyncio.gather(
            first.claim("inventory", f"e-{n}", 30.0), second.claim("inventory", f"e-{n}", 30.0)
        )
        # Then one holds the claim and the other finds it busy
        assert sorted(results) == ["busy", "claimed"]


async def test_a_completed_claim_is_done_for_its_group_only(memory: MakeTransport) -> None:
    (store,) = await _stores(memory, 1)
    assert await store.claim("inventory", "e-1", 30.0) == "claimed"
    assert not await store.seen("inventory", "e-1")  # a claim is not a done marker
    await store.complete("inventory", "e-1", 3600.0)
    assert await store.seen("inventory", "e-1")
    assert await store.claim("inventory", "e-1", 30.0) == "done"
    assert await store.claim("audit", "e-1", 30.0) == "claimed"


async def test_release_frees_a_claim_but_never_a_done_marker(memory: MakeTransport) -> None:
    (store,) = await _stores(memory, 1)
    assert await store.claim("inventory", "e-1", 30.0) == "claimed"
    # When the handler failed and the claim is released
    await store.release("inventory", "e-1")
    # Then the next copy may run
    assert await store.claim("inventory", "e-1", 30.0) == "claimed"
    await store.complete("inventory", "e-1", 3600.0)
    # And releasing a done event (a replayed copy that failed) leaves it done
    await store.release("inventory", "e-1")
    assert await store.claim("inventory", "e-1", 30.0) == "done"


async def test_claims_and_markers_expire_on_the_transport_clock(
    memory: MakeTransport, clock: ManualClock
) -> None:
    (store,) = await _stores(memory, 1)
    # A claim whose holder died is free once its lease ends
    assert await store.claim("inventory", "e-1", 30.0) == "claimed"
    clock.advance(29.0)
    assert await store.claim("inventory", "e-1", 30.0) == "busy"
    clock.advance(1.0)
    assert await store.claim("inventory", "e-1", 30.0) == "claimed"
    # A done marker lives its ttl
    await store.complete("inventory", "e-1", 60.0)
    clock.advance(59.0)
    assert await store.claim("inventory", "e-1", 30.0) == "done"
    clock.advance(1.0)
    assert not await store.seen("inventory", "e-1")
    assert await store.claim("inventory", "e-1", 30.0) == "claimed"
