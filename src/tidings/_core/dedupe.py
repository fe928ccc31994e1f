"""External dedupe stores for transports without their own (RabbitMQ): ``redis://``.

A marker is one Redis key per (bus, group, event id), written with ``SET NX`` and a TTL; it
expires on its own, so the store never grows without bound. The marker is
written after the handler returns: a crash between the effect and the marker re-runs the
handler once (at-least-once); the transactional inbox closes that window later.
"""

from __future__ import annotations

from typing import Any

from .._exceptions import BrokerUnavailable, ConfigError
from ..transports._transport import DedupeStore
from ..transports._urls import mask_url

__all__ = ["RedisDedupeStore", "open_dedupe_store"]


class RedisDedupeStore(DedupeStore):
    """Dedupe markers in Redis (redis-py asyncio): ``SET key 1 NX PX ttl``."""

    def __init__(self, url: str, namespace: str = "tidings") -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError(
                f"dedupe store {mask_url(url)!r} needs the redis package: "
                "pip install 'tidings[rabbitmq]'"
            ) from exc
        self.url = url
        self.namespace = namespace
        try:
            self._client: Any = aioredis.from_url(url)
        except ValueError as exc:
            raise ConfigError(f"bad dedupe store URL {mask_url(url)!r}: {exc}") from exc

    def _key(self, group: str, event_id: str) -> str:
        return f"tidings:dedupe:{self.namespace}:{group}:{event_id}"

    async def seen(self, group: str, event_id: str) -> bool:
        try:
            return bool(await self._client.exists(self._key(group, event_id)))
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        millis = max(1, int(ttl * 1000))
        try:
            await self._client.set(self._key(group, event_id), b"1", nx=True, px=millis)
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()

    def _unavailable(self, exc: Exception) -> BrokerUnavailable:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return BrokerUnavailable(f"dedupe store {mask_url(self.url)} unavailable: {first}")


def open_dedupe_store(url: str, namespace: str = "tidings") -> DedupeStore:
    """The dedupe store for `url` (``redis://`` or ``rediss://``); `ConfigError` otherwise.

    `namespace` (the bus name) keeps the markers of two buses on one Redis apart.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        return RedisDedupeStore(url, namespace)
    raise ConfigError(
        f"unsupported dedupe store {mask_url(url)!r}: use redis://host:6379/0 "
        "(or a transport with its own store: sqlite://, memory://)"
    )
