"""Configuration errors: bad URLs, conflicting registrations, wrong messages — one clear line."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support import eventually
from tidings import Bus, Command, ConfigError, Event, StateError
from tidings.testing import ManualClock
from tidings.transports import TransportOptions, mask_url
from tidings.transports.memory import MemoryTransport, create_transport


class OrderPlaced(Event, type="order.placed", version=1):
    order_id: str


class Untyped(Event):
    x: int


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://localhost:99999", "bad port '99999'"),
        ("redis://localhost", "unknown bus URL scheme redis://"),
        ("tidings.db", "malformed bus URL"),
        ("://nothing", "malformed bus URL"),
    ],
)
async def test_bad_urls_are_clear_errors(url: str, message: str) -> None:
    bus = Bus(url)
    with pytest.raises(ConfigError, match=message):
        await bus.start()


async def test_errors_never_show_a_password() -> None:
    bus = Bus("nosuch://alice:s3cret@example.com/vhost")
    with pytest.raises(ConfigError) as info:
        await bus.start()
    assert "s3cret" not in str(info.value)
    assert "alice:***@example.com" in str(info.value)
    assert "s3cret" not in repr(bus)


def test_mask_url() -> None:
    assert mask_url("amqp://guest:guest@localhost:5672/v") == "amqp://guest:***@localhost:5672/v"
    assert mask_url("sqlite:///tidings.db") == "sqlite:///tidings.db"
    # A port that is not a number is kept as written, never a crash that shows the URL
    assert mask_url("amqp://u:secret@h:notaport/v") == "amqp://u:***@h:notaport/v"
    assert mask_url("amqp://u:p@ss@[::1]:99999/") == "amqp://u:***@[::1]:99999/"


def test_url_defaults_to_environment_then_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_URL", raising=False)
    assert Bus().url == "sqlite:///tidings.db"
    monkeypatch.setenv("TIDINGS_URL", "memory://from-env")
    assert Bus().url == "memory://from-env"
    assert Bus("memory://given").url == "memory://given"


def test_group_defaults_to_module_and_function() -> None:
    bus = Bus("memory://")

    @bus.subscribe("order.placed")
    async def reserve(event: OrderPlaced) -> None: ...

    assert list(bus.groups) == [
        f"{__name__}.test_group_defaults_to_module_and_function.<locals>.reserve"
    ]


def test_overlapping_patterns_in_one_group_are_refused() -> None:
    bus = Bus("memory://")

    @bus.subscribe("order.*", group="g")
    async def one(event: OrderPlaced) -> None: ...

    with pytest.raises(ConfigError, match="can match the same events"):

        @bus.subscribe("#.placed", group="g")
        async def two(event: OrderPlaced) -> None: ...

    @bus.subscribe("payment.*", group="g")  # disjoint: fine
    async def three(event: dict) -> None: ...

    assert [p for p in bus.groups["g"].spec().patterns] == ["order.*", "payment.*"]


def test_conflicting_group_settings_are_refused() -> None:
    bus = Bus("memory://")

    @bus.subscribe("a.x", group="g", concurrency=4)
    async def one(event: dict) -> None: ...

    @bus.subscribe("a.y", group="g")  # default concurrency: takes the group's
    async def two(event: dict) -> None: ...

    assert bus.groups["g"].concurrency == 4
    with pytest.raises(ConfigError, match="conflicting concurrency"):

        @bus.subscribe("a.z", group="g", concurrency=8)
        async def three(event: dict) -> None: ...


def test_handlers_must_be_async_and_take_event_and_maybe_ctx() -> None:
    bus = Bus("memory://")
    with pytest.raises(ConfigError, match="async function"):

        @bus.subscribe("a.b")
        def sync_handler(event: dict) -> None: ...

    with pytest.raises(ConfigError, match="positional parameters"):

        @bus.subscribe("a.b")
        async def too_many(event: dict, ctx: object, extra: object) -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": -1}, "timeout"),
        ({"retry": 3}, "tidings.Retry"),
    ],
)
def test_bad_subscribe_options(kwargs: dict[str, object], message: str) -> None:
    bus = Bus("memory://")
    with pytest.raises(ConfigError, match=message):
        bus.subscribe("a.b", **kwargs)(_noop)  # type: ignore[arg-type]


async def _noop(event: dict) -> None: ...


@pytest.mark.parametrize("pattern", ["a.*b", "or#der"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(ConfigError, match="pattern"):
        Bus("memory://").subscribe(pattern)(_noop)


def test_message_types_are_checked_at_class_definition() -> None:
    with pytest.raises(ConfigError, match="dotted name"):

        class Bad(Event, type="order.*"):
            pass

    with pytest.raises(ConfigError, match="version"):

        class BadVersion(Command, type="a.b", version=0):
            pass


async def test_publishing_needs_an_open_bus_and_a_typed_event() -> None:
    bus = Bus("memory://cfg", on_unroutable="ignore")
    with pytest.raises(StateError, match="async with bus"):
        await bus.publish(OrderPlaced(order_id="1"))
    async with bus:
        with pytest.raises(ConfigError, match="has no message type"):
            await bus.publish(Untyped(x=1))
        with pytest.raises(ConfigError, match="Event or Command"):
            await bus.publish({"order_id": "1"})  # type: ignore[arg-type]
    with pytest.raises(StateError, match="closed"):
        await bus.start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_unroutable": "drop"}, "on_unroutable"),
        ({"wire": "xml"}, "wire"),
        ({"max_message_size": 0}, "max_message_size"),
    ],
)
def test_bad_bus_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Bus("memory://", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["admin:s3cret@host/vhost", "//admin:s3cret@host"])
async def test_malformed_urls_with_credentials_are_masked(url: str) -> None:
    with pytest.raises(ConfigError, match="malformed") as info:
        await Bus(url).start()
    assert "s3cret" not in str(info.value)


class Pinged(Event, type="ping.sent", version=1):
    n: int


async def test_a_bus_runs_on_a_transport_instance_with_the_transports_options() -> None:
    # Given a transport built by hand (its own name and clock)
    clock = ManualClock()
    transport = MemoryTransport(
        f"memory://{uuid.uuid4().hex}", TransportOptions(name="shop", clock=clock)
    )
    bus = Bus(name="shop", transport=transport)
    got: list[int] = []

    @bus.subscribe("ping.sent", group="pings")
    async def pinged(event: Pinged) -> None:
        got.append(event.n)

    # When it publishes, the transport is the one it runs on, on the transport's clock
    async with bus:
        assert bus.transport is transport
        assert bus.clock is clock
        await bus.publish(Pinged(n=1))
        await eventually(lambda: got == [1], what="the delivery")


async def test_a_bus_calls_a_transport_factory_with_its_settings() -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    def factory(url: str, options: Mapping[str, Any]) -> MemoryTransport:
        calls.append((url, dict(options)))
        return create_transport(url, options)

    url = f"memory://{uuid.uuid4().hex}"
    bus = Bus(url, name="shop", lease=12.0, transport=factory)
    async with bus:
        assert isinstance(bus.transport, MemoryTransport)
    assert [u for u, _ in calls] == [url]
    options = calls[0][1]
    assert (options["name"], options["lease"]) == ("shop", 12.0)


async def test_a_factory_must_return_a_transport_and_a_transport_must_be_one() -> None:
    with pytest.raises(ConfigError, match="factory returned dict, not a Transport"):
        await Bus("memory://x", transport=lambda url, options: {}).start()  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="must be a tidings.transports.Transport or a factory"):
        Bus("memory://x", transport="memory://y")  # type: ignore[arg-type]


async def test_unknown_transport_options_are_refused_before_connecting() -> None:
    bus = Bus("memory://x", partitons=8)
    with pytest.raises(ConfigError, match="partitons"):
        await bus.start()
