"""`export_schemas` and `check_schemas` called from Python, as the CLI calls them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidings import Bus, ConfigError, Event
from tidings.schemas import Mode, check_schemas, export_schemas, upcaster


class Placed(Event, type="order.placed", version=1):
    order_id: str


class SamePlaced(Event, type="order.placed", version=1):  # another module's copy of it
    order_id: str


class ChangedPlaced(Event, type="order.placed", version=1):
    order_id: str
    coupon: str


def test_two_copies_of_one_schema_export_once(tmp_path: Path) -> None:
    bus = Bus("memory://")

    @bus.subscribe("order.placed", group="billing")
    async def bill(event: Placed) -> None: ...

    bus.publishes(SamePlaced)
    [path] = export_schemas(bus, tmp_path)
    assert json.loads(path.read_text())["title"] == "Placed"
    assert check_schemas(bus, tmp_path, Mode.FULL_TRANSITIVE) == []


def test_two_different_schemas_under_one_version_are_refused(tmp_path: Path) -> None:
    bus = Bus("memory://")

    @bus.subscribe("order.placed", group="billing")
    async def bill(event: Placed) -> None: ...

    bus.publishes(ChangedPlaced)
    with pytest.raises(ConfigError, match="two different schemas for 'order.placed' version 1"):
        export_schemas(bus, tmp_path)


def test_publishes_takes_message_classes_only() -> None:
    bus = Bus("memory://")
    with pytest.raises(ConfigError, match="pass the class, not an instance"):
        bus.publishes(Placed(order_id="o"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no message type"):
        bus.publishes(Event)


def test_an_unknown_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown compatibility mode 'lax'"):
        check_schemas(Bus("memory://"), tmp_path, "lax")


class PlacedV3(Event, type="order.placed", version=3):
    order_id: str


def test_a_missing_upcaster_fails_the_gate_in_every_mode(tmp_path: Path) -> None:
    @upcaster("order.placed", from_version=2)
    def step(data: dict[str, Any]) -> dict[str, Any]:
        return data

    bus = Bus("memory://")

    @bus.subscribe("order.placed", group="billing")
    async def bill(event: PlacedV3) -> None: ...

    for mode in ("forward", "backward_transitive"):
        [gap] = check_schemas(bus, tmp_path, mode)
        assert str(gap) == (
            "order.placed v3: no upcaster from version 1 to 2 (the bus would not start)"
        )
    assert check_schemas(bus, tmp_path, "none") == []
