"""Versioned message schemas: upcasters, a schema registry with a compatibility gate, and
AsyncAPI.

```python
from tidings.schemas import upcaster

@upcaster("order.placed", from_version=1)
def order_placed_v2(data: dict) -> dict:
    return {**data, "currency": "EUR"}   # the data of version 2
```

Upcasters run on the way in (live deliveries, dead-letter and retained-log replays): the
data of an old version is brought to the version of the handler's model before it is
validated. The rules (a newer version is dead-lettered, a gap in a chain stops the bus
from starting, a type without upcasters is validated as it is) are in the
[Schemas guide](../../guides/schemas.md).

`export_schemas`, `check_schemas` and `asyncapi_document` are what ``tidings schema
export``, ``tidings schema check`` and ``tidings asyncapi`` run.
"""

from __future__ import annotations

from .._core.upcasting import Upcast, Upcasters, registry, upcaster
from ._asyncapi import asyncapi_document
from ._catalog import json_schema_of
from ._registry import Incompatibility, Mode, check_schemas, export_schemas, read_registry
from ._rules import Change, compare_schemas

__all__ = [
    "Change",
    "Incompatibility",
    "Mode",
    "Upcast",
    "Upcasters",
    "asyncapi_document",
    "check_schemas",
    "compare_schemas",
    "export_schemas",
    "json_schema_of",
    "read_registry",
    "registry",
    "upcaster",
]
