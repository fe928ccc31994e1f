"""The public transport interface: what `tidings.transports` and its sub-packages export, each
name documented, and the defaults a minimal third-party transport inherits."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import pytest

import tidings.transports
from tidings import NotSupported
from tidings.transports import (
    Consumer,
    Deliver,
    Delivery,
    Failure,
    GroupSpec,
    GroupStats,
    OutgoingMessage,
    RawDeadLetter,
    Transport,
    TransportOptions,
    memory,
    rabbitmq,
    sqlite,
)


def test_the_interface_exports_what_a_transport_needs() -> None:
    assert sorted(tidings.transports.__all__) == sorted(
        [
            "CAP_ATOMIC_BATCH",
            "CAP_DEDUPE",
            "CAP_REPLAY_LOG",
            "COMMON_OPTIONS",
            "ENTRY_POINT_GROUP",
            "Claimed",
            "Clock",
            "Consumer",
            "DedupeStore",
            "Deliver",
            "Delivery",
            "Failure",
            "GroupSpec",
            "GroupStats",
            "ManualClock",
            "OnReply",
            "OutgoingMessage",
            "RawDeadLetter",
            "Replies",
            "SystemClock",
            "Transport",
            "TransportFactory",
            "TransportOptions",
            "mask_url",
            "matches",
            "open_transport",
            "register_transport",
            "split_options",
            "validate_pattern",
        ]
    )
    assert memory.__all__ == [
        "MemoryBroker",
        "MemoryOptions",
        "MemoryTransport",
        "create_transport",
    ]
    assert sqlite.__all__ == ["SqliteOptions", "SqliteTransport", "create_transport", "sqlite_path"]
    assert rabbitmq.__all__ == ["RabbitMQOptions", "RabbitMQTransport", "create_transport"]


@pytest.mark.parametrize("package", [tidings.transports, memory, sqlite, rabbitmq])
def test_every_public_class_and_function_has_a_docstring(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        value = getattr(package, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__ and value.__doc__.strip(), f"{package.__name__}.{name}"  # type: ignore[attr-defined]
            if inspect.isclass(value):
                for attr, member in vars(value).items():
                    if inspect.isfunction(member) and not attr.startswith("_"):
                        assert inspect.getdoc(member), f"{name}.{attr}"


class Minimal(Transport):
    """Only the abstract methods, as a transport written for the first release would be."""

    scheme = "minimal"

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def declare(self, groups: Sequence[GroupSpec]) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        return [False for _ in messages]

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        raise NotImplementedError

    async def ack(self, delivery: Delivery) -> None: ...
    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None: ...
    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None: ...

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        return []

    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        raise NotImplementedError

    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        return 0

    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        return 0

    async def stats(self) -> list[GroupStats]:
        return []


async def test_optional_operations_have_defaults_a_minimal_transport_inherits() -> None:
    async with Minimal("minimal://x", TransportOptions()) as transport:
        with pytest.raises(NotSupported, match="minimal:// transport keeps no log"):
            await transport.replay("orders", 0.0)
        assert transport.dedupe_store() is None
        assert transport.capabilities == frozenset()
        assert transport.ack_soon(Delivery(group="g", id="1", type="t", body=b"")) is False
        await transport.ping()  # through stats()
