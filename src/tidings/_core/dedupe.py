"""External dedupe stores for transports without their own (RabbitMQ): ``redis://``.

One Redis key per (bus, group, event id) holds either a claim or a "done" marker, and always
expires on its own, so the store never grows without bound:

- `claim` is ``SET key claim:<token> NX PX lease``: one atomic step, so of two copies of an
  event in flight at once exactly one gets the claim; the other reads the key and finds the
  claim ("busy") or the marker ("done"). A claim whose holder died expires with its lease.
- `complete` overwrites the key with ``done`` for the marker's TTL.
- `release` deletes the key only while it still holds this store's claim (a small Lua script,
  so a marker, or a claim another process took after ours expired, is never deleted);
  `renew` extends it the same way while the handler runs.

The marker is written after the handler returns: a crash between the effect and the marker
re-runs the handler once (at-least-once); the transactional inbox closes that window.
Every method raises `BrokerUnavailable` when Redis cannot be reached; the pipeline then
postpones the delivery (see `tidings._core.claim.Claim`).
"""

from __future__ import annotations

import uuid
from typing import Any

from .._exceptions import BrokerUnavailable, ConfigError
from ..transports._transport import Claimed, DedupeStore
from ..transports._urls import mask_url

__all__ = ["RedisDedupeStore", "open_dedupe_store"]

DONE = b"done"
LEGACY_DONE = b"1"
"""The marker value `mark` wrote before claims existed; still read as done."""
CLAIM_PREFIX = b"claim:"

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

TIMEOUT = 5.0
"""Seconds a Redis command or connection may take (unless the URL sets its own): a Redis
that hangs is then "down" rather than a handler stuck for ever."""


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisDedupeStore(DedupeStore):
    """Claims and markers in Redis (redis-py asyncio); see the module docstring."""

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
            # The URL's own socket_timeout / socket_connect_timeout win over these.
            self._client: Any = aioredis.from_url(
                url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            )
        except ValueError as exc:
            raise ConfigError(f"bad dedupe store URL {mask_url(url)!r}: {exc}") from exc
        self._release = self._client.register_script(_RELEASE)
        self._renew = self._client.register_script(_RENEW)
        # The token of each claim this store holds, so `release` deletes only its own.
        self._tokens: dict[str, bytes] = {}

    def _key(self, group: str, event_id: str) -> str:
        return f"tidings:dedupe:{self.namespace}:{group}:{event_id}"

    async def seen(self, group: str, event_id: str) -> bool:
        try:
            value = await self._client.get(self._key(group, event_id))
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return value in (DONE, LEGACY_DONE)

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        try:
            await self._client.set(self._key(group, event_id), DONE, px=_millis(ttl))
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def claim(self, group: str, event_id: str, lease: float) -> Claimed:
        key = self._key(group, event_id)
        token = CLAIM_PREFIX + uuid.uuid4().hex.encode()
        try:
            # Twice at most: a key that expires between the SET and the GET is free again.
            for _ in range(2):
                if await self._client.set(key, token, nx=True, px=_millis(lease)):
                    self._tokens[key] = token
                    return "claimed"
                value = await self._client.get(key)
                if value is not None:
                    return "busy" if bytes(value).startswith(CLAIM_PREFIX) else "done"
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return "busy"

    async def complete(self, group: str, event_id: str, ttl: float) -> None:
        key = self._key(group, event_id)
        self._tokens.pop(key, None)
        try:
            await self._client.set(key, DONE, px=_millis(ttl))
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def release(self, group: str, event_id: str) -> None:
        key = self._key(group, event_id)
        token = self._tokens.pop(key, None)
        if token is None:
            return
        try:
            await self._release(keys=[key], args=[token])
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def renew(self, group: str, event_id: str, lease: float) -> None:
        key = self._key(group, event_id)
        token = self._tokens.get(key)
        if token is None:
            return
        try:
            await self._renew(keys=[key], args=[token, _millis(lease)])
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
