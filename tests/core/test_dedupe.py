"""The Redis dedupe store behind ``Bus(dedupe="redis://...")``."""

import uuid

import pytest

from tests.servers import redis_server  # noqa: F401 - the session's private Redis
from tests.support import eventually
from tidings import ConfigError
from tidings._core.dedupe import open_dedupe_store

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "postgresql://u:pw@h/db"])
def test_other_schemes_are_a_clear_config_error(url):
    with pytest.raises(ConfigError) as caught:
        open_dedupe_store(url)
    assert "redis://" in str(caught.value) and "pw@" not in str(caught.value)


async def test_markers_are_per_namespace_and_group_and_expire(redis_server):  # noqa: F811
    store = open_dedupe_store(redis_server.url, namespace=f"n{uuid.uuid4().hex[:8]}")
    other = open_dedupe_store(redis_server.url, namespace=f"n{uuid.uuid4().hex[:8]}")
    try:
        assert not await store.seen("orders", "e-1")
        await store.mark("orders", "e-1", 0.3)
        assert await store.seen("orders", "e-1")
        assert not await store.seen("audit", "e-1")
        assert not await other.seen("orders", "e-1")

        async def expired() -> bool:
            return not await store.seen("orders", "e-1")

        await eventually(expired, 5, "the marker to expire")
    finally:
        await store.close()
        await other.close()
