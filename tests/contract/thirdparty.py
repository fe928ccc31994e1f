"""A transport as a third party writes one: only public names of `tidings.transports`.

``relay://NAME`` hands every operation to an in-memory broker of that name, counting what
passes through (as a transport wrapping another one, for metrics or tracing, would). It has
one option of its own, ``label``; any other keyword is refused before anything is built.
The contract tests run the shipped suite on it through the registry, through a factory, and
through an entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidings import ConfigError
from tidings.transports import (
    Consumer,
    DedupeStore,
    Deliver,
    Delivery,
    Failure,
    GroupSpec,
    GroupStats,
    OutgoingMessage,
    RawDeadLetter,
    Transport,
    TransportOptions,
    split_options,
)
from tidings.transports.memory import MemoryTransport

SCHEME = "relay"


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """The relay transport's own option: a label for its counters."""

    label: str = "relay"

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ConfigError(f"label must be a non-empty string, not {self.label!r}")


class RelayTransport(Transport):
    """Every operation goes to `inner`; `published` and `settled` count what went through."""

    scheme = SCHEME
    capabilities = MemoryTransport.capabilities

    def __init__(
        self, url: str, options: TransportOptions, settings: RelayOptions, inner: Transport
    ) -> None:
        super().__init__(url, options)
        self.settings = settings
        self.inner = inner
        self.published = 0
        self.settled = 0

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        await self.inner.declare(groups)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        self.published += len(messages)
        return await self.inner.publish(messages)

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        return await self.inner.consume(group, deliver)

    async def ack(self, delivery: Delivery) -> None:
        self.settled += 1
        await self.inner.ack(delivery)

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        self.settled += 1
        await self.inner.retry_later(delivery, delay, failure)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        self.settled += 1
        await self.inner.dead_letter(delivery, failure)

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        return await self.inner.dlq_list(group, limit, offset)

    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        return await self.inner.dlq_get(group, entry_id)

    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        return await self.inner.dlq_replay(group, entry_ids, rebuild)

    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        return await self.inner.dlq_purge(group, entry_ids)

    async def stats(self) -> list[GroupStats]:
        return await self.inner.stats()

    async def replay(self, group: str, since: float) -> int:
        return await self.inner.replay(group, since)

    def dedupe_store(self) -> DedupeStore | None:
        return self.inner.dedupe_store()


def create_transport(url: str, options: Mapping[str, Any]) -> RelayTransport:
    """The factory: ``relay://NAME`` relays to ``memory://relay-NAME``."""
    common, settings = split_options(options, RelayOptions, transport=SCHEME)
    name = url.split("://", 1)[1]
    inner = MemoryTransport(f"memory://relay-{name}", common)
    return RelayTransport(url, common, settings, inner)
