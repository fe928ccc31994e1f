"""``tidings asyncapi``: the document validates against the official AsyncAPI 3.0.0 JSON
Schema (``@asyncapi/specs`` from npm, installed by scripts/setup.sh), in JSON and YAML, and
every ``$ref`` in it resolves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / ".cache/npm/node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"

APP = """
from decimal import Decimal
from enum import Enum

from pydantic import BaseModel

from tidings import Bus, Command, Event

bus = Bus("amqp://shop:secret@rabbit:5672/prod", name="shop")


class Currency(str, Enum):
    EUR = "EUR"
    USD = "USD"


class Line(BaseModel):
    sku: str
    quantity: int
    price: Decimal


class Address(BaseModel):
    street: str
    city: str


class OrderPlaced(Event, type="order.placed", version=2):
    \"\"\"An order was placed.\"\"\"

    order_id: str
    lines: list[Line]
    currency: Currency = Currency.EUR
    ship_to: Address | None = None


class OrderCancelled(Event, type="order.cancelled", version=1):
    order_id: str


class ChargeCard(Command, type="payment.charge", version=1):
    order_id: str
    amount: Decimal


@bus.subscribe("order.placed", group="billing")
async def bill(event: OrderPlaced) -> None: ...


@bus.subscribe("order.*", group="audit")
async def audit(event: dict) -> None: ...


@bus.subscribe("payment.charge", group="payment")
async def charge(command: ChargeCard) -> None: ...


bus.publishes(OrderPlaced, OrderCancelled, ChargeCard)
"""


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.fail(f"{SPEC} is missing: run scripts/setup.sh (npm install of @asyncapi/specs)")
    loaded: dict[str, Any] = json.loads(SPEC.read_text())
    return loaded


def asyncapi(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "shopapp.py").write_text(APP)
    return subprocess.run(
        [sys.executable, "-m", "tidings", "asyncapi", "shopapp:bus", *args], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def check(document: dict[str, Any], spec: dict[str, Any]) -> None:
    errors = sorted(jsonschema.Draft7Validator(spec).iter_errors(document), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]]
    for ref in refs(document):
        resolve(document, ref)


def test_the_json_document_validates_and_describes_the_bus(
    tmp_path: Path, spec: dict[str, Any]
) -> None:
    done = asyncapi(tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    check(document, spec)

    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["broker"] == {
        "host": "rabbit:5672",
        "protocol": "amqp",
        "pathname": "/prod",
    }
    assert "secret" not in done.stdout
    channels = document["channels"]
    assert {c["address"] for c in channels.values()} == {
        "order.placed",
        "order.cancelled",
        "payment.charge",
    }
    placed = channels["order.placed"]
    assert placed["bindings"]["amqp"]["exchange"] == {
        "name": "shop", "type": "topic", "durable": True, "autoDelete": False,
    }  # fmt: skip
    operations = document["operations"]
    receive = {
        (o["x-tidings-group"], o["channel"]["$ref"])
        for o in operations.values()
        if o["action"] == "receive"
    }
    assert receive == {
        ("billing", "#/channels/order.placed"),
        ("audit", "#/channels/order.placed"),  # order.* matches both known event types
        ("audit", "#/channels/order.cancelled"),
        ("payment", "#/channels/payment.charge"),
    }
    send = sorted(o["channel"]["$ref"] for o in operations.values() if o["action"] == "send")
    assert send == [
        "#/channels/order.cancelled",
        "#/channels/order.placed",
        "#/channels/payment.charge",
    ]
    # the payload, its nested models and enum, reached through $refs
    message = resolve(document, placed["messages"]["order.placed.v2"]["$ref"])
    assert message["name"] == "order.placed" and message["x-tidings-version"] == 2
    payload = resolve(document, message["payload"]["$ref"])
    line = resolve(document, payload["properties"]["lines"]["items"]["$ref"])
    assert set(line["properties"]) == {"sku", "quantity", "price"}
    assert resolve(document, payload["properties"]["currency"]["$ref"])["enum"] == ["EUR", "USD"]


def test_the_yaml_document_validates(tmp_path: Path, spec: dict[str, Any]) -> None:
    out = tmp_path / "asyncapi.yaml"
    done = asyncapi(tmp_path, "--format", "yaml", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    document = yaml.safe_load(out.read_text())
    check(document, spec)
    assert document["info"]["title"] == "shop"


def test_the_validation_rejects_a_broken_document(tmp_path: Path, spec: dict[str, Any]) -> None:
    # the check above can fail: a document without info, or with a dangling $ref, does
    document = json.loads(asyncapi(tmp_path).stdout)
    del document["info"]
    with pytest.raises(AssertionError, match="info"):
        check(document, spec)
    document = json.loads(asyncapi(tmp_path).stdout)
    document["channels"]["order.placed"]["messages"]["order.placed.v2"]["$ref"] += "x"
    with pytest.raises(KeyError):
        check(document, spec)


def test_yaml_without_pyyaml_names_the_extra(tmp_path: Path) -> None:
    fake = tmp_path / "no-yaml"
    (fake / "yaml").mkdir(parents=True)
    (fake / "yaml" / "__init__.py").write_text("raise ImportError('no yaml here')\n")
    done = asyncapi(tmp_path, "--format", "yaml", env={"PYTHONPATH": str(fake)})
    assert done.returncode == 2
    assert "tidings[schemas]" in done.stderr and done.stderr.count("\n") == 1
