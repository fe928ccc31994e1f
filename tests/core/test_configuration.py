"""Configuration errors: bad URLs, conflicting registrations, wrong messages — one clear line."""

from __future__ import annotations

import pytest

from tidings import Bus, Command, ConfigError, Event, StateError
from tidings.transports import mask_url


class OrderPlaced(Event, type="order.placed", version=1):
    order_id: str


class Untyped(Event):
    x: int


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://localhost:9092", "Kafka transport is on the roadmap"),
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
