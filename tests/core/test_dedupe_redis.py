"""Claims in the Redis dedupe store: atomic, released only by their holder, expiring with
their lease; a Redis that is down is `BrokerUnavailable`."""

import asyncio
import uuid

import pytest

from tests.servers import RedisServer, redis_server  # noqa: F401 - the session's private Redis
from tests.support import eventually
from tidings import BrokerUnavailable
from tidings._core.dedupe import open_dedupe_store

pytestmark = pytest.mark.redis


@pytest.fixture
async def stores(redis_server):  # noqa: F811
    """Two stores (two processes, say) on one namespace of the session's Redis."""
    namespace = f"n{uuid.uuid4().hex[:8]}"
    made = [open_dedupe_store(redis_server.url, namespace=namespace) for _ in range(2)]
    yield made
    for store in made:
        await store.close()


async def test_of_many_concurrent_claims_exactly_one_wins(stores):
    # Given one event id, claimed by twenty copies at once from two stores, twelve times over
    for round_ in range(12):
        event_id = f"e-{round_}"
        # When they all claim at once
        results = await asyncio.gather(
            *(stores[n % 2].claim("orders", event_id, 30.0) for n in range(20))
        )
        # Then one holds the claim and every other copy finds it busy
        assert sorted(results) == ["busy"] * 19 + ["claimed"]


async def test_a_completed_claim_is_done_and_a_released_one_is_free(stores):
    first, second = stores
    assert await first.claim("orders", "e-1", 30.0) == "claimed"
    assert await second.claim("orders", "e-1", 30.0) == "busy"
    assert not await second.seen("orders", "e-1")  # a claim is not a done marker
    # When the holder fails, its claim goes, and the next copy may run
    await first.release("orders", "e-1")
    assert await second.claim("orders", "e-1", 30.0) == "claimed"
    # When that copy succeeds, every later copy is a duplicate
    await second.complete("orders", "e-1", 60.0)
    assert await first.claim("orders", "e-1", 30.0) == "done"
    assert await first.seen("orders", "e-1")
    # And a release never deletes a done marker, nor another store's claim
    await first.release("orders", "e-1")
    await second.release("orders", "e-1")
    assert await first.claim("orders", "e-1", 30.0) == "done"
    assert await first.claim("audit", "e-1", 30.0) == "claimed"
    await second.release("audit", "e-1")
    assert await second.claim("audit", "e-1", 30.0) == "busy"


async def test_a_claim_whose_holder_died_is_free_once_its_lease_ends(stores):
    first, second = stores
    assert await first.claim("orders", "e-2", 0.2) == "claimed"  # and its holder dies

    async def free() -> bool:
        return await second.claim("orders", "e-2", 30.0) == "claimed"

    await eventually(free, 5, "the claim to expire")
    # The dead holder's late release does not drop the new claim
    await first.release("orders", "e-2")
    assert await first.claim("orders", "e-2", 30.0) == "busy"


async def test_markers_written_before_claims_existed_still_count_as_done(stores, redis_server):  # noqa: F811
    first, _ = stores
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server.url)
    try:
        await client.set(f"tidings:dedupe:{first.namespace}:orders:old", b"1", px=60_000)
    finally:
        await client.aclose()
    assert await first.seen("orders", "old")
    assert await first.claim("orders", "old", 30.0) == "done"


async def test_a_redis_that_is_down_is_broker_unavailable(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = open_dedupe_store(server.url, namespace="down")
    try:
        assert await store.claim("orders", "e-1", 30.0) == "claimed"
        assert await store.claim("orders", "e-3", 30.0) == "claimed"
        server.stop()
        for call in (
            store.claim("orders", "e-2", 30.0),
            store.complete("orders", "e-1", 60.0),
            store.release("orders", "e-3"),
            store.seen("orders", "e-1"),
        ):
            with pytest.raises(BrokerUnavailable) as caught:
                await call
            assert f"127.0.0.1:{server.port}" in str(caught.value)
    finally:
        server.stop()
        await store.close()
