"""``tidings schema export|check``: the registry written, and the gate's exit statuses (0
compatible, 1 breaking, naming field and rule, 2 bad input) as a CI job sees them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAD = """
from decimal import Decimal
from enum import Enum

from pydantic import BaseModel

from tidings import Bus, Command, Event
from tidings.schemas import upcaster

bus = Bus("memory://")


class Address(BaseModel):
    street: str
    city: str
"""

V1 = """
class OrderPlaced(Event, type="order.placed", version=1):
    order_id: str
    total: Decimal
    address: Address
"""

TAIL = """
class ChargeCard(Command, type="payment.charge", version=1):
    order_id: str
    amount: Decimal


@bus.subscribe("order.placed", group="billing")
async def bill(event: OrderPlaced) -> None: ...


bus.publishes(ChargeCard)
"""


def app(tmp_path: Path, model: str, extra: str = "") -> None:
    (tmp_path / "app.py").write_text(HEAD + textwrap.dedent(model) + extra + TAIL)


def tidings(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args], cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """The v1 app's schemas exported to ``schemas/`` in the repository."""
    app(tmp_path, V1)
    done = tidings(tmp_path, "schema", "export", "app:bus", "schemas")
    assert done.returncode == 0, done.stderr
    return tmp_path / "schemas"


def test_export_writes_one_file_per_type_and_version(registry: Path) -> None:
    files = sorted(p.relative_to(registry).as_posix() for p in registry.rglob("*.json"))
    assert files == ["order.placed/v1.json", "payment.charge/v1.json"]
    text = (registry / "order.placed" / "v1.json").read_text()
    assert text.endswith("}\n")
    schema = json.loads(text)
    assert list(schema) == sorted(schema)  # stable key order
    assert schema["required"] == ["order_id", "total", "address"]
    assert schema["$defs"]["Address"]["required"] == ["street", "city"]


def test_unchanged_code_passes_the_gate(tmp_path: Path, registry: Path) -> None:
    done = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compatible" in done.stdout


def test_a_required_field_added_to_a_version_fails_naming_field_and_rule(
    tmp_path: Path, registry: Path
) -> None:
    # Given the same version with a new required field, and one in the nested model
    app(tmp_path, V1 + "    coupon: str\n", extra="")
    (tmp_path / "app.py").write_text(
        (tmp_path / "app.py")
        .read_text()
        .replace("    city: str\n", "    city: str\n    zip: str\n")
    )
    done = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        "order.placed v1 against stored v1: field 'coupon': added a required field "
        "(no default) breaks BACKWARD"
    ) in lines
    assert any("field 'address.zip': added a required field" in line for line in lines), lines
    assert "2 incompatible change(s) under mode backward_transitive" in done.stderr


def test_an_optional_field_passes_every_mode(tmp_path: Path, registry: Path) -> None:
    app(tmp_path, V1 + '    coupon: str = ""\n')
    for mode in ("forward", "full_transitive"):
        done = tidings(
            tmp_path, "schema", "check", "app:bus", "--against", "schemas", "--mode", mode
        )
        assert done.returncode == 0, (mode, done.stdout + done.stderr)


V2 = """
class OrderPlaced(Event, type="order.placed", version=2):
    order_id: str
    amount: Decimal
    address: Address
"""

UPCASTER = """
@upcaster("order.placed", from_version=1)
def total_to_amount(data: dict) -> dict:
    data = dict(data)
    data["amount"] = data.pop("total")
    return data
"""


def test_a_new_version_is_compared_with_the_old_one_unless_an_upcaster_links_them(
    tmp_path: Path, registry: Path
) -> None:
    # Given version 2 renames a field, without an upcaster
    app(tmp_path, V2)
    done = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas")
    # Then reading v1 data as it is would break
    assert done.returncode == 1
    assert (
        "order.placed v2 against stored v1: field 'amount': added a required field" in done.stdout
    )
    # and only the directions the mode asks for count
    forward = tidings(
        tmp_path, "schema", "check", "app:bus", "--against", "schemas", "--mode", "forward"
    )
    assert forward.returncode == 1 and "field 'total': removed a required field" in forward.stdout
    assert "'amount'" not in forward.stdout
    none = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas", "--mode", "none")
    assert none.returncode == 0
    # When an upcaster links v1 to v2, Then v1 data reaches v2 through it: nothing to compare
    app(tmp_path, V2, extra=UPCASTER)
    done = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas")
    assert done.returncode == 0, done.stdout + done.stderr
    # and the export adds v2 beside v1
    assert tidings(tmp_path, "schema", "export", "app:bus", "schemas").returncode == 0
    assert sorted(p.name for p in (registry / "order.placed").iterdir()) == ["v1.json", "v2.json"]


def test_bad_input_exits_2_with_one_line(tmp_path: Path, registry: Path) -> None:
    cases = [
        ("schema", "check", "app:bus", "--against", "missing"),
        ("schema", "check", "nowhere:bus", "--against", "schemas"),
        ("schema", "export", "app:nothing", "out"),
    ]
    for args in cases:
        done = tidings(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    (registry / "order.placed" / "v1.json").write_text("{not json")
    done = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas")
    assert done.returncode == 2 and "v1.json: not a JSON schema" in done.stderr
    done = tidings(tmp_path, "schema", "check", "app:bus", "--against", "schemas", "--mode", "lax")
    assert done.returncode == 2
